/**
 * A worker process of a multi-process gateway (server.workers > 1): the fronts (SMTP proxy,
 * milter, policy service), the session engine and the relay, counting through the primary's
 * series (IpcStore) and sessions gauge (IpcSessions), checking bans against its copy of the
 * primary's list (WorkerControls), and reporting journal lines, verdicts, firings and ban
 * requests to the primary (WorkerReporter). It takes its config from the primary (the text the
 * primary validated), shares the listening sockets with the other workers (node:cluster), drains
 * when told, and exits when the primary is gone.
 */
import type { Logger } from 'pino';
import { parseConfigText } from '../config/load.js';
import { seriesCatalogue, type SeriesCatalogue } from '../config/catalogue.js';
import type { Config } from '../config/types.js';
import { systemClock } from '../series/clock.js';
import type { Recorder } from '../audit/recorder.js';
import type { SessionEngine } from '../audit/session.js';
import { createEngine } from '../audit/engine.js';
import { GatewayEvents, type RelayCommand } from '../events.js';
import { relayFor } from '../gateway.js';
import { createLogger } from '../log.js';
import type { Relay } from '../smtp/relay/types.js';
import { SmtpFront } from '../smtp/front.js';
import { Journal } from '../journal/journal.js';
import { formatLine } from '../journal/line.js';
import type { FiringEvent } from '../audit/recorder.js';
import type { Ban } from '../bans/ban-list.js';
import { IpcBatcher, IpcSessions, IpcStore } from './ipc-store.js';
import { readPrimaryMessage, type PrimaryMessage, type WorkerMessage, type WorkerStats } from './messages.js';
import { WorkerReporter } from './reporter.js';
import { WorkerControls } from './worker-controls.js';
import { WorkerMtaFronts } from './worker-fronts.js';

const MAX_LATENCIES = 10_000;

export class ClusterWorker {
  readonly batcher: IpcBatcher;
  readonly store: IpcStore;
  readonly recorder: Recorder;
  readonly engine: SessionEngine;
  readonly events = new GatewayEvents();
  readonly front: SmtpFront;
  readonly reporter: WorkerReporter;
  readonly controls: WorkerControls;
  readonly journal = new Journal(systemClock);
  readonly mta: WorkerMtaFronts;
  private relay: Relay;
  /** Names of the policies some alert wants (undefined: every policy). */
  private alerted: ReadonlySet<string> | undefined = new Set();
  private latencies: Array<[RelayCommand, number]> = [];
  /** The config's series types (which count distinct values). */
  private distinct: SeriesCatalogue['types'];

  constructor(
    private config: Config,
    private readonly send: (m: WorkerMessage) => void,
    readonly logger: Logger,
  ) {
    this.distinct = seriesCatalogue(config).types;
    this.batcher = new IpcBatcher(send);
    this.store = new IpcStore(this.batcher, (series) => this.distinct.get(series)?.distinct);
    const sessions = new IpcSessions(this.batcher);
    this.reporter = new WorkerReporter({ send });
    this.controls = new WorkerControls(config, systemClock, (r) => this.reporter.ban(r));
    const { events, journal, controls } = this;
    ({ recorder: this.recorder, engine: this.engine } = createEngine({ config, store: this.store, sessions, clock: systemClock, logger, hostname: () => this.config.server.hostname, events, journal, controls }));
    this.recorder.onFiring = (e) => this.fired(e);
    this.events.on('decision', (e) => this.reporter.decision(e));
    this.relay = relayFor(config, logger);
    this.front = new SmtpFront({ config: () => this.config, engine: this.engine, relay: () => this.relay, events: this.events, logger });
    this.mta = new WorkerMtaFronts(this.engine, () => this.config, logger);
    this.follow(config);
    this.events.on('relayLatency', (command, seconds) => {
      if (this.latencies.length < MAX_LATENCIES) this.latencies.push([command, seconds]);
    });
  }

  async listen(): Promise<void> {
    await this.front.listen(this.config.server.listen);
    await this.mta.listen(this.config);
    this.send({ ag: 'ready', listen: this.front.addresses(), ...this.mta.addresses() });
  }

  /** What follows the config besides the engine: the journal on or off, which firings alerts want. */
  private follow(config: Config): void {
    this.journal.setSink(config.journal ? (line) => this.reporter.journalLine(formatLine(line)) : undefined);
    const all = config.alerts.some((a) => a.policies === undefined);
    this.alerted = all ? undefined : new Set(config.alerts.flatMap((a) => a.policies ?? []));
  }

  /** A firing some alert wants goes to the primary, which deduplicates and sends alerts for every worker. */
  private fired(e: FiringEvent): void {
    if (e.policy.action === 'accept' || (this.alerted && !this.alerted.has(e.policy.name))) return;
    const { at, cid, stage, mode, key, count, ip } = e;
    this.reporter.firing({ at, cid, stage, mode, policy: e.policy.name, ip, ...(key !== undefined ? { key } : {}), ...(count !== undefined ? { count } : {}) });
  }

  /** A reloaded config (the primary checked what needs a restart): policies, front and relay switch for new events. */
  configure(config: Config): void {
    const relayChanged = JSON.stringify(config.relay) !== JSON.stringify(this.config.relay);
    this.config = config;
    this.distinct = seriesCatalogue(config).types;
    this.recorder.configure(config);
    this.controls.configure(config);
    this.follow(config);
    this.front.build(config);
    if (relayChanged) {
      const old = this.relay;
      this.relay = relayFor(config, this.logger);
      void old.close().catch(() => {});
    }
  }

  stats(): WorkerStats {
    const latencies = this.latencies;
    this.latencies = [];
    return {
      pid: process.pid,
      open: this.front.openSessions(),
      front: this.front.stats,
      relay: this.relay.stats(),
      decisions: [...this.recorder.decisionCounts],
      recent: this.recorder.recentFirings(50),
      storeFailures: this.recorder.storeFailureCount(),
      batches: this.batcher.batches,
      roundTrips: this.batcher.roundTrips,
      cpu: process.cpuUsage(),
      latencies,
      bansRefused: this.controls.refused,
      journalDropped: this.reporter.dropped,
      mta: this.mta.stats(),
    };
  }

  /** Stops accepting, finishes open sessions (at most `ms`), closes the relay and sends the last batch. */
  async drain(ms: number): Promise<void> {
    await Promise.all([this.front.close(ms), this.mta.close()]);
    await this.relay.close().catch(() => {});
    this.batcher.flush();
    this.reporter.flush();
  }
}

/**
 * The worker process: waits for the primary's config, listens, then serves; answers the
 * primary's batches, stats requests, reloads and drain. Exits when the channel to the primary
 * closes (the primary died: no orphans).
 */
export function runWorker(index: string, startLogger: Logger): void {
  let worker: ClusterWorker | undefined;
  let controls: WorkerControls | undefined;
  let logger = startLogger;
  const send = (m: WorkerMessage, done?: () => void): void => {
    if (!process.connected || !process.send) throw new Error('the IPC channel is closed');
    process.send(m, undefined, {}, done);
  };
  process.on('disconnect', () => {
    logger.error('the primary process is gone; exiting');
    process.exit(1);
  });
  // The primary decides when to drain; a signal to the whole group must not stop a worker on its own.
  process.on('SIGTERM', () => undefined);
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
  process.on('message', (raw: unknown) => {
    const msg = readPrimaryMessage(raw);
    if (msg) void handle(msg);
  });
  send({ ag: 'hello' });

  async function handle(msg: PrimaryMessage): Promise<void> {
    switch (msg.ag) {
      case 'answer':
        worker?.batcher.answer(msg.id, msg.results);
        return;
      case 'stats?':
        // held adds (and reports: ban requests, firings, journal lines) first, so what the admin API reads next includes them
        worker?.batcher.flush();
        worker?.reporter.flush();
        if (worker) send({ ag: 'stats', id: msg.id, stats: worker.stats() });
        return;
      case 'config':
        return configure(msg.text, msg.file, msg.bans);
      case 'bans':
        controls?.apply(msg.changes);
        return;
      case 'drain':
        if (!worker) process.exit(0);
        await worker.drain(msg.ms);
        send({ ag: 'drained' }, () => process.exit(0));
        return;
    }
  }

  async function configure(text: string, file: string, bans: Ban[] = []): Promise<void> {
    try {
      const config = parseConfigText(text, file);
      if (worker) {
        worker.configure(config);
        send({ ag: 'configured' });
        return;
      }
      logger = createLogger(config.log.level).child({ worker: index });
      const w = new ClusterWorker(config, send, logger);
      // ban changes that arrive while it starts to listen apply to it, after the bans in force
      controls = w.controls;
      controls.apply(bans.map((ban) => ({ ban })));
      await w.listen();
      worker = w;
    } catch (err) {
      send({ ag: 'configured', error: err instanceof Error ? err.message : String(err) }, () => {
        if (!worker) process.exit(1);
      });
    }
  }
}
