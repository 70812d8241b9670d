/**
 * Composition root: series registry from config, store, recorder, relay, the fronts (SMTP
 * proxy, milter, policy service: one engine for all); reload and drain. Persistence,
 * serialized logs and the admin API hang off the same object.
 */
import type { Logger } from 'pino';
import { seriesCatalogue } from './config/catalogue.js';
import type { Config, HostPort, JournalConfig, ListenAddress, RelayConfig } from './config/types.js';
import { systemClock, type Clock } from './series/clock.js';
import { SeriesRegistry } from './series/registry.js';
import { createStore, RoutingStore, type RedisTuning } from './store/create.js';
import type { ManagedStore } from './store/types.js';
import type { Recorder } from './audit/recorder.js';
import { SessionTracker } from './audit/sessions.js';
import type { SessionEngine } from './audit/session.js';
import { createEngine } from './audit/engine.js';
import { GatewayEvents } from './events.js';
import { createRelay } from './smtp/relay/create.js';
import { NoRelay } from './smtp/relay/none.js';
import type { Relay, RelayOptions } from './smtp/relay/types.js';
import { SmtpFront } from './smtp/front.js';
import { createLogger } from './log.js';
import { AuditgateError } from './errors.js';
import { formatListenAddress } from './config/values.js';
import { AdminServer } from './admin/server.js';
import type { AdminView } from './admin/view.js';
import type { SeriesPersister } from './history/persister.js';
import type { SeriesLogWriter } from './history/log-writer.js';
import { startPersistence } from './history/persistence.js';
import { BanService } from './bans/ban-service.js';
import { BanSync, type BanSyncOptions } from './bans/ban-sync.js';
import { AlertSender, type AlertSenderOptions } from './alerts/alert-sender.js';
import { AlertDispatcher } from './alerts/alert-dispatcher.js';
import { OperatorControls } from './audit/controls.js';
import { Journal } from './journal/journal.js';
import { formatLine } from './journal/line.js';
import type { JournalStats, JournalWriter } from './journal/writer.js';
import { followJournal } from './journal/follow.js';
import type { MtaListener } from './mta/listener.js';
import { createMilterFront } from './milter/front.js';
import { createPolicyFront } from './policy-service/front.js';

export interface GatewayOptions {
  config: Config;
  clock?: Clock;
  logger?: Logger;
  /** Shared ban list tuning the config does not carry (resync and probe periods; tests shorten them). */
  banSync?: Pick<BanSyncOptions, 'resyncMs' | 'probeMs' | 'keyPrefix'>;
  /** Redis store settings the config does not carry (see RedisTuning). */
  redis?: RedisTuning;
  /** Alert delivery tuning the config does not carry (queue bound, concurrency, first retry delay). */
  alertDelivery?: Pick<AlertSenderOptions, 'maxQueue' | 'concurrency' | 'backoffMs'>;
}

export function relayUrls(config: Config): string | string[] | undefined {
  const r = config.relay;
  if (!r) return undefined;
  return r.kind === 'dir' ? r.url : r.backends.map((b) => b.url);
}

/** The relay's runtime options from the config (the boundary: YAML names and seconds stay on the config side). */
export function relayOptions(r: RelayConfig, config: Config, logger: Logger): RelayOptions {
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

/**
 * The relay a config asks for, already connecting to its backends to learn what they offer;
 * without one (server.listen: [], no SMTP proxy) a NoRelay that refuses with 451.
 */
export function relayFor(config: Config, logger: Logger): Relay {
  if (!config.relay) return new NoRelay();
  const relay = createRelay(relayOptions(config.relay, config, logger));
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
  /** The milter front, when config.milter is set. */
  milter: MtaListener | undefined;
  /** The policy-service front, when config.policy_service is set. */
  policyService: MtaListener | undefined;
  /** The admin HTTP listener, when config.admin.listen is set. */
  admin: AdminServer | undefined;
  readonly startedAt: number;
  private readonly banSync: GatewayOptions['banSync'];
  private readonly alertDelivery: GatewayOptions['alertDelivery'];
  private readonly redisTuning: RedisTuning | undefined;
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
    this.redisTuning = opts.redis;
  }

  async start(): Promise<void> {
    for (const d of seriesCatalogue(this.config).definitions) this.registry.define(d);
    this.startPersistence();
    await this.configureJournal(this.config.journal);
    // A ban is on disk within a second of being issued, lifted or added (sooner with a shorter persist_interval).
    const saveDelayMs = Math.min(1000, this.config.persist_interval * 1000);
    this.bans = new BanService({ clock: this.clock, logger: this.logger, stateDir: this.config.state_dir, saveDelayMs, node: this.config.server.hostname });
    this.bans.start();
    this.controls = new OperatorControls(this.bans, this.config);
    this.controls.onManual = (change) => this.journal.control(change);
    try {
      if (this.config.store.redis !== undefined) {
        this.bans.share = await BanSync.connect({ redis: this.config.store.redis, service: this.bans, clock: this.clock, logger: this.logger, ...this.banSync });
      }
      this.store = await createStore({ config: this.config, registry: this.registry, clock: this.clock, logger: this.logger, ...(this.redisTuning ? { redis: this.redisTuning } : {}) });
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
      await this.startMtaFronts();
      this.admin = await startAdmin(this);
    } catch (err) {
      // E.g. a listener that cannot bind (a ListenError naming its key): release everything started so far.
      await this.close(0).catch(() => {});
      throw err;
    }
    const mta = (f: MtaListener | undefined) => f?.addresses().map(formatListenAddress);
    this.logger.info(
      { listen: this.front.addresses(), milter: mta(this.milter), policy_service: mta(this.policyService), admin: this.admin?.address(), relay: relayUrls(this.config), series: this.registry.list().length },
      'auditgate listening',
    );
  }

  /** The milter and policy-service fronts the config asks for, on the same engine as the SMTP proxy. */
  private async startMtaFronts(): Promise<void> {
    const { milter, policy_service } = this.config;
    const deps = { engine: this.engine, logger: this.logger, clock: this.clock };
    if (milter) {
      this.milter = createMilterFront({ ...deps, settings: () => this.config.milter });
      await this.milter.listen(milter.listen);
    }
    if (policy_service) {
      this.policyService = createPolicyFront({ ...deps, settings: () => this.config.policy_service });
      await this.policyService.listen(policy_service.listen);
    }
  }

  /** Where the milter listens (port 0 resolved), [] without a milter front. */
  milterAddresses(): ListenAddress[] {
    return this.milter?.addresses() ?? [];
  }

  /** Where the policy service listens (port 0 resolved), [] without one. */
  policyAddresses(): ListenAddress[] {
    return this.policyService?.addresses() ?? [];
  }

  mtaFronts(): MtaListener[] {
    return [this.milter, this.policyService].filter((f): f is MtaListener => f !== undefined);
  }

  /** Where the admin listener is bound (port 0 resolved), or undefined when disabled. */
  adminAddress(): HostPort | undefined {
    return this.admin?.address();
  }

  /** persist: true series are reloaded now and saved periodically; serialize: true series log closed windows. */
  private startPersistence(): void {
    ({ persister: this.persister, logWriter: this.logWriter } = startPersistence({ registry: this.registry, config: () => this.config, logger: this.logger, clock: this.clock }));
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
    await followJournal(this.journalWriter, j, this, (writer) => {
      this.journalWriter = writer;
      this.journal.setSink(writer ? (line) => writer.append(formatLine(line)) : undefined);
    });
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
    checkReload(this.config, config, this.store);
    const defs = applySeries(this.registry, config);
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
    this.admin = await rebindAdmin(this, this.admin);
  }

  /** Stops accepting, drains sessions, closes relay and store. */
  async close(drainMs = 10_000): Promise<void> {
    await this.admin?.close().catch(() => {});
    await Promise.all(this.mtaFronts().map((f) => f.close()));
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

/**
 * Refuses a reload that changes what is fixed at start (SMTP and MTA-front listen addresses, the shared
 * store, series moving to Redis without one): an AG_CONFIG error naming the keys. `extra`:
 * more such keys the caller found.
 */
export function checkReload(current: Config, next: Config, store: ManagedStore, extra: string[] = []): void {
  const needsRestart: string[] = [];
  if (JSON.stringify(next.server.listen) !== JSON.stringify(current.server.listen)) needsRestart.push('server.listen');
  if (JSON.stringify(next.store.redis ?? null) !== JSON.stringify(current.store.redis ?? null)) needsRestart.push('store.redis');
  if (seriesCatalogue(next).replicated.length > 0 && !(store instanceof RoutingStore)) needsRestart.push('a series with replicate: cluster | manager');
  for (const key of ['milter', 'policy_service'] as const) {
    if (JSON.stringify(next[key]?.listen ?? null) !== JSON.stringify(current[key]?.listen ?? null)) needsRestart.push(`${key}.listen`);
  }
  needsRestart.push(...extra);
  if (needsRestart.length) {
    throw new AuditgateError('AG_CONFIG', `${next.file}: reload refused: ${needsRestart.join(', ')} changed, which needs a restart`);
  }
}

/** Defines the series of a (reloaded) config and drops the others; returns the definitions. */
export function applySeries(registry: SeriesRegistry, config: Config): ReturnType<typeof seriesCatalogue>['definitions'] {
  const defs = seriesCatalogue(config).definitions;
  for (const d of defs) registry.define(d);
  registry.retain(defs.map((d) => d.name));
  return defs;
}

/** The admin listener of view.config (undefined when disabled); a ListenError when it cannot bind. */
export async function startAdmin(view: AdminView): Promise<AdminServer | undefined> {
  if (!view.config.admin.listen) return undefined;
  const admin = new AdminServer(view, view.config.admin.listen);
  await admin.listen();
  return admin;
}

/** Closes the admin listener and binds it again from view.config (undefined when disabled or it cannot bind, logged). */
export async function rebindAdmin(view: AdminView, old: AdminServer | undefined): Promise<AdminServer | undefined> {
  await old?.close().catch(() => {});
  const listen = view.config.admin.listen;
  if (!listen) return undefined;
  const admin = new AdminServer(view, listen);
  try {
    await admin.listen();
    return admin;
  } catch (err) {
    view.logger.error({ err, listen }, 'admin listener could not be rebound; admin API is off until the next reload');
    return undefined;
  }
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const g = new Gateway(opts);
  await g.start();
  return g;
}
