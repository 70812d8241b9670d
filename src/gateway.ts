/**
 * Composition root: series registry from config, store, recorder, relay, SMTP front; reload
 * and drain. Persistence, serialized logs and the admin API hang off the same object.
 */
import type { Logger } from 'pino';
import { seriesCatalogue } from './config/catalogue.js';
import type { Config, HostPort, JournalConfig } from './config/types.js';
import { systemClock, type Clock } from './series/clock.js';
import { SeriesRegistry } from './series/registry.js';
import { createStore, RoutingStore } from './store/create.js';
import type { ManagedStore } from './store/types.js';
import type { Recorder } from './audit/recorder.js';
import { SessionTracker } from './audit/sessions.js';
import type { SessionEngine } from './audit/session.js';
import { createEngine } from './audit/engine.js';
import { GatewayEvents } from './events.js';
import { createRelay } from './smtp/relay/create.js';
import type { Relay, RelayOptions } from './smtp/relay/types.js';
import { SmtpFront } from './smtp/front.js';
import { createLogger } from './log.js';
import { AuditgateError } from './errors.js';
import { AdminServer } from './admin/server.js';
import type { AdminView } from './admin/view.js';
import { SeriesPersister } from './history/persister.js';
import { SeriesLogWriter } from './history/log-writer.js';
import { BanService } from './bans/ban-service.js';
import { BanSync, type BanSyncOptions } from './bans/ban-sync.js';
import { AlertSender, type AlertSenderOptions } from './alerts/alert-sender.js';
import { AlertDispatcher } from './alerts/alert-dispatcher.js';
import { OperatorControls } from './audit/controls.js';
import { Journal } from './journal/journal.js';
import { formatLine } from './journal/line.js';
import { JournalWriter, type JournalStats } from './journal/writer.js';

export interface GatewayOptions {
  config: Config;
  clock?: Clock;
  logger?: Logger;
  /** Shared ban list tuning the config does not carry (resync and probe periods; tests shorten them). */
  banSync?: Pick<BanSyncOptions, 'resyncMs' | 'probeMs' | 'keyPrefix'>;
  /** Alert delivery tuning the config does not carry (queue bound, concurrency, first retry delay). */
  alertDelivery?: Pick<AlertSenderOptions, 'maxQueue' | 'concurrency' | 'backoffMs'>;
}

function relayUrls(config: Config): string | string[] {
  const r = config.relay;
  return r.kind === 'dir' ? r.url : r.backends.map((b) => b.url);
}

/** The relay's runtime options from the config (the boundary: YAML names and seconds stay on the config side). */
export function relayOptions(config: Config, logger: Logger): RelayOptions {
  const r = config.relay;
  const hostname = config.server.hostname;
  if (r.kind === 'dir') return { kind: 'dir', dir: r.dir, hostname, logger };
  const { mode, ca, servername, cert, key } = r.tls;
  return {
    kind: 'smtp',
    backends: r.backends.map((b) => ({ url: b.url, host: b.host, port: b.port, implicitTls: b.implicit_tls })),
    strategy: r.strategy,
    tls: { mode, ca: ca?.pem, servername, cert: cert?.pem, key: key?.pem },
    timeoutMs: r.timeout * 1000,
    poolSize: r.pool_size,
    chunking: r.chunking,
    hostname,
    logger,
  };
}

/** The relay a config asks for, already connecting to its backends to learn what they offer. */
export function relayFor(config: Config, logger: Logger): Relay {
  const relay = createRelay(relayOptions(config, logger));
  relay.start();
  return relay;
}

export class Gateway implements AdminView {
  config: Config;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: SeriesRegistry;
  readonly sessions: SessionTracker;
  store!: ManagedStore;
  recorder!: Recorder;
  engine!: SessionEngine;
  readonly events = new GatewayEvents();
  relay!: Relay;
  front!: SmtpFront;
  /** The admin HTTP listener, when config.admin.listen is set. */
  admin: AdminServer | undefined;
  readonly startedAt: number;
  private readonly banSync: GatewayOptions['banSync'];
  private readonly alertDelivery: GatewayOptions['alertDelivery'];
  persister: SeriesPersister | undefined;
  logWriter: SeriesLogWriter | undefined;
  bans!: BanService;
  controls!: OperatorControls;
  alerts!: AlertSender;
  private alertDispatcher!: AlertDispatcher;
  /** Every stage event, to `journal.dir` when the config has a journal (else it builds nothing). */
  readonly journal: Journal;
  journalWriter: JournalWriter | undefined;

  constructor(opts: GatewayOptions) {
    this.config = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? createLogger(opts.config.log.level);
    this.registry = new SeriesRegistry(this.clock);
    this.sessions = new SessionTracker(this.clock);
    this.journal = new Journal(this.clock);
    this.startedAt = this.clock.now();
    this.banSync = opts.banSync;
    this.alertDelivery = opts.alertDelivery;
  }

  async start(): Promise<void> {
    for (const d of seriesCatalogue(this.config).definitions) this.registry.define(d);
    this.startPersistence();
    // A ban is on disk within a second of being issued, lifted or added (sooner with a shorter persist_interval).
    const saveDelayMs = Math.min(1000, this.config.persist_interval * 1000);
    this.bans = new BanService({ clock: this.clock, logger: this.logger, stateDir: this.config.state_dir, saveDelayMs, node: this.config.server.hostname });
    this.bans.start();
    this.controls = new OperatorControls(this.bans, this.config);
    await this.configureJournal(this.config.journal);
    try {
      if (this.config.store.redis !== undefined) {
        this.bans.share = await BanSync.connect({ redis: this.config.store.redis, service: this.bans, clock: this.clock, logger: this.logger, ...this.banSync });
      }
      this.store = await createStore({ config: this.config, registry: this.registry, clock: this.clock, logger: this.logger });
      const { config, store, sessions, clock, logger, journal, controls, events } = this;
      ({ recorder: this.recorder, engine: this.engine } = createEngine({ config, store, sessions, clock, logger, journal, controls, events, hostname: () => this.config.server.hostname }));
      this.startAlerts();
      this.relay = relayFor(this.config, this.logger);
      this.front = new SmtpFront({
        config: () => this.config,
        engine: this.engine,
        relay: () => this.relay,
        events: this.events,
        logger: this.logger,
      });
      await this.front.listen(this.config.server.listen);
      if (this.config.admin.listen) {
        const admin = new AdminServer(this, this.config.admin.listen);
        await admin.listen();
        this.admin = admin;
      }
    } catch (err) {
      // E.g. a listener that cannot bind (a ListenError naming its key): release everything started so far.
      await this.close(0).catch(() => {});
      throw err;
    }
    this.logger.info({ listen: this.front.addresses(), admin: this.admin?.address(), relay: relayUrls(this.config), series: this.registry.list().length }, 'auditgate listening');
  }

  /** Where the admin listener is bound (port 0 resolved), or undefined when disabled. */
  adminAddress(): HostPort | undefined {
    return this.admin?.address();
  }

  /** persist: true series are reloaded now and saved periodically; serialize: true series log closed windows. */
  private startPersistence(): void {
    this.logWriter = new SeriesLogWriter({
      registry: this.registry,
      logDir: this.config.log_dir,
      retentionSec: this.config.log_retention,
      logger: this.logger,
      clock: this.clock,
      seriesNames: () => seriesCatalogue(this.config).serialized,
    });
    this.persister = new SeriesPersister({
      registry: this.registry,
      stateDir: this.config.state_dir,
      intervalSec: this.config.persist_interval,
      logger: this.logger,
      clock: this.clock,
      seriesNames: () => seriesCatalogue(this.config).persisted,
    });
    const writer = this.logWriter;
    this.persister.onRestored = (snap) => writer.restoredWindow(snap);
    const { restored, problems } = this.persister.loadAll();
    if (Object.keys(restored).length || problems.length) this.logger.info({ restored, problems }, 'persisted series loaded');
    this.persister.start();
    this.logWriter.start();
  }

  /** Alerts: a firing the recorder logs is matched and deduplicated at once, sent later (never awaited). */
  private startAlerts(): void {
    this.alerts = new AlertSender({ logger: this.logger, ...this.alertDelivery });
    const recorder = this.recorder;
    this.alertDispatcher = new AlertDispatcher({
      clock: this.clock,
      logger: this.logger,
      sender: this.alerts,
      node: () => this.config.server.hostname,
      windowCounts: (e) => recorder.windowCounts(e),
    });
    this.alertDispatcher.configure(this.config.alerts);
    recorder.onFiring = (e) => this.alertDispatcher.fired(e);
  }

  /**
   * Follows the config's journal: lines go to a writer on `journal.dir` (a new one when the
   * directory changed; the old one writes what it holds and closes), or nowhere without one.
   */
  private async configureJournal(j: JournalConfig | undefined): Promise<void> {
    const old = this.journalWriter;
    if (old && j && old.dir === j.dir) {
      old.setRetention(j.retention);
      return;
    }
    const writer = j ? new JournalWriter({ dir: j.dir, retentionSec: j.retention, clock: this.clock, logger: this.logger }) : undefined;
    writer?.start();
    this.journalWriter = writer;
    this.journal.setSink(writer ? (line) => writer.append(formatLine(line)) : undefined);
    await old?.close();
  }

  journalStats(): JournalStats | undefined {
    return this.journalWriter?.stats();
  }

  smtpAddresses(): HostPort[] {
    return this.front.addresses();
  }

  /**
   * Applies a new, already validated config without dropping connections: series keep their
   * counts when their shape is unchanged, policies and relay switch for new events, the admin
   * listener is rebound when its address or token changed. SMTP listen addresses and the shared
   * store (Redis) are fixed at start: a reload that changes them is refused as a whole.
   */
  async reload(config: Config): Promise<void> {
    const needsRestart: string[] = [];
    if (JSON.stringify(config.server.listen) !== JSON.stringify(this.config.server.listen)) needsRestart.push('server.listen');
    if (JSON.stringify(config.store.redis ?? null) !== JSON.stringify(this.config.store.redis ?? null)) needsRestart.push('store.redis');
    const catalogue = seriesCatalogue(config);
    if (catalogue.replicated.length > 0 && !(this.store instanceof RoutingStore)) needsRestart.push('a series with replicate: cluster | manager');
    if (needsRestart.length) {
      throw new AuditgateError('AG_CONFIG', `${config.file}: reload refused: ${needsRestart.join(', ')} changed, which needs a restart`);
    }
    const defs = catalogue.definitions;
    for (const d of defs) this.registry.define(d);
    this.registry.retain(defs.map((d) => d.name));
    const oldRelay = this.relay;
    const relayChanged = JSON.stringify(config.relay) !== JSON.stringify(this.config.relay);
    const adminChanged = JSON.stringify(config.admin) !== JSON.stringify(this.config.admin);
    this.config = config;
    this.recorder.configure(config);
    this.controls.configure(config);
    this.alertDispatcher.configure(config.alerts);
    await this.configureJournal(config.journal);
    if (this.store instanceof RoutingStore) this.store.reconfigure(config);
    this.front.build(config);
    if (relayChanged) {
      this.relay = relayFor(config, this.logger);
      void oldRelay.close().catch(() => {});
    }
    if (adminChanged) await this.restartAdmin();
    this.logger.info({ file: config.file, series: defs.length, policies: config.policies.length }, 'configuration reloaded');
  }

  private async restartAdmin(): Promise<void> {
    await this.admin?.close().catch(() => {});
    this.admin = undefined;
    if (!this.config.admin.listen) return;
    const admin = new AdminServer(this, this.config.admin.listen);
    try {
      await admin.listen();
      this.admin = admin;
    } catch (err) {
      this.logger.error({ err, listen: this.config.admin.listen }, 'admin listener could not be rebound; admin API is off until the next reload');
    }
  }

  /** Stops accepting, drains sessions, closes relay and store. */
  async close(drainMs = 10_000): Promise<void> {
    await this.admin?.close().catch(() => {});
    await this.front?.close(drainMs);
    await this.persister?.stop().catch((err: unknown) => this.logger.error({ err }, 'saving persisted series failed'));
    await this.logWriter?.stop().catch((err: unknown) => this.logger.error({ err }, 'flushing series logs failed'));
    await this.bans?.close();
    this.alerts?.close();
    this.journal.setSink(undefined);
    await this.journalWriter?.close();
    await this.relay?.close().catch(() => {});
    await this.store?.close().catch(() => {});
    this.logger.info('auditgate stopped');
  }
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const g = new Gateway(opts);
  await g.start();
  return g;
}
