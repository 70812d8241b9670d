/**
 * A worker process of a multi-process gateway (server.workers > 1): the SMTP front, the session
 * engine and the relay, counting through the primary's series (IpcStore) and sessions gauge
 * (IpcSessions). It takes its config from the primary (the text the primary validated), shares
 * the listening socket with the other workers (node:cluster), drains when told, and exits when
 * the primary is gone.
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
import { IpcBatcher, IpcSessions, IpcStore } from './ipc-store.js';
import { readPrimaryMessage, type PrimaryMessage, type WorkerMessage, type WorkerStats } from './messages.js';

const MAX_LATENCIES = 10_000;

export class ClusterWorker {
  readonly batcher: IpcBatcher;
  readonly store: IpcStore;
  readonly recorder: Recorder;
  readonly engine: SessionEngine;
  readonly events = new GatewayEvents();
  readonly front: SmtpFront;
  private relay: Relay;
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
    ({ recorder: this.recorder, engine: this.engine } = createEngine({ config, store: this.store, sessions, clock: systemClock, logger, hostname: () => this.config.server.hostname }));
    this.relay = relayFor(config, logger);
    this.front = new SmtpFront({ config: () => this.config, engine: this.engine, relay: () => this.relay, events: this.events, logger });
    this.events.on('relayLatency', (command, seconds) => {
      if (this.latencies.length < MAX_LATENCIES) this.latencies.push([command, seconds]);
    });
  }

  async listen(): Promise<void> {
    await this.front.listen(this.config.server.listen);
    this.send({ ag: 'ready', listen: this.front.addresses() });
  }

  /** A reloaded config (the primary checked what needs a restart): policies, front and relay switch for new events. */
  configure(config: Config): void {
    const relayChanged = JSON.stringify(config.relay) !== JSON.stringify(this.config.relay);
    this.config = config;
    this.distinct = seriesCatalogue(config).types;
    this.recorder.configure(config);
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
    };
  }

  /** Stops accepting, finishes open sessions (at most `ms`), closes the relay and sends the last batch. */
  async drain(ms: number): Promise<void> {
    await this.front.close(ms);
    await this.relay.close().catch(() => {});
    this.batcher.flush();
  }
}

/**
 * The worker process: waits for the primary's config, listens, then serves; answers the
 * primary's batches, stats requests, reloads and drain. Exits when the channel to the primary
 * closes (the primary died: no orphans).
 */
export function runWorker(index: string, startLogger: Logger): void {
  let worker: ClusterWorker | undefined;
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
        // held adds first, so what the admin API reads next includes them
        worker?.batcher.flush();
        if (worker) send({ ag: 'stats', id: msg.id, stats: worker.stats() });
        return;
      case 'config':
        return configure(msg.text, msg.file);
      case 'drain':
        if (!worker) process.exit(0);
        await worker.drain(msg.ms);
        send({ ag: 'drained' }, () => process.exit(0));
        return;
    }
  }

  async function configure(text: string, file: string): Promise<void> {
    try {
      const config = parseConfigText(text, file);
      if (worker) {
        worker.configure(config);
        send({ ag: 'configured' });
        return;
      }
      logger = createLogger(config.log.level).child({ worker: index });
      const w = new ClusterWorker(config, send, logger);
      await w.listen();
      worker = w;
    } catch (err) {
      send({ ag: 'configured', error: err instanceof Error ? err.message : String(err) }, () => {
        if (!worker) process.exit(1);
      });
    }
  }
}
