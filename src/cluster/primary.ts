/**
 * The primary of a multi-process gateway (server.workers > 1). It owns the series registry, the
 * store (memory; Redis for replicate: cluster | manager series), the sessions gauge,
 * persistence, the series log, the ban list, alerts, the journal and the admin listener
 * (primary-services.ts); N worker processes (node:cluster) run the fronts (SMTP proxy, milter,
 * policy service) and the relay and count through it (see apply.ts, ipc-store.ts).
 *
 * Lifecycle: a worker that dies is logged and started again (its open sessions are lost, and
 * leave the gauge); reload validates once here and pushes the same config text to every worker;
 * close drains every worker, then saves and closes what the primary owns. Workers exit when
 * the primary is gone.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config, HostPort, ListenAddress } from '../config/types.js';
import { ListenError } from '../errors.js';
import { GatewayEvents } from '../events.js';
import { applySeries, checkReload, rebindAdmin, relayUrls, startAdmin } from '../gateway.js';
import { formatListenAddress } from '../config/values.js';
import type { AdminServer } from '../admin/server.js';
import type { AdminView } from '../admin/view.js';
import { SessionTracker } from '../audit/sessions.js';
import type { SeriesLogWriter } from '../history/log-writer.js';
import type { SeriesPersister } from '../history/persister.js';
import { startPersistence } from '../history/persistence.js';
import { systemClock, type Clock } from '../series/clock.js';
import { SeriesRegistry } from '../series/registry.js';
import { createStore, RoutingStore } from '../store/create.js';
import type { ManagedStore } from '../store/types.js';
import type { Maybe } from '../maybe.js';
import { BatchApplier } from './apply.js';
import * as agg from './aggregate.js';
import { batchId, readWorkerMessage, type BanChange, type OpResult, type PrimaryMessage, type WorkerMessage, type WorkerStats } from './messages.js';
import { PrimaryServices } from './primary-services.js';
import { prepareMtaSockets } from './worker-fronts.js';
import type { BansAdmin } from '../admin/bans.js';

/** How long a reload or a stats request waits for the workers' answers. */
const ANSWER_TIMEOUT_MS = 10_000;
const STATS_TIMEOUT_MS = 1000;
/** A worker that dies within this long of its start is started again after this long (no busy crash loop). */
const RESTART_BACKOFF_MS = 1000;

/** server.workers as a number of processes ('auto': one per core). */
export function workerCount(config: Config): number {
  const w = config.server.workers;
  return w === 'auto' ? os.availableParallelism() : w;
}

interface Slot {
  index: string;
  worker: Worker;
  startedAt: number;
  ready: boolean;
  exited: Promise<void>;
  /** Settles the start: ready, or the worker's error. */
  started: { resolve(): void; reject(err: Error): void };
  /** Waiting for the worker's 'configured' (reload) / 'stats' answers. */
  acks: Array<(error?: string) => void>;
  stats: Map<number, () => void>;
}

export interface PrimaryOptions {
  config: Config;
  /** The config file's text (what workers parse, so everyone runs the same config). */
  text: string;
  logger: Logger;
  clock?: Clock;
}

export class ClusterPrimary implements AdminView {
  config: Config;
  private text: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: SeriesRegistry;
  readonly sessions: SessionTracker;
  readonly events = new GatewayEvents();
  readonly startedAt: number;
  store!: ManagedStore;
  applier!: BatchApplier;
  persister: SeriesPersister | undefined;
  logWriter: SeriesLogWriter | undefined;
  admin: AdminServer | undefined;
  /** Where the workers listen (port 0 resolved). */
  listen: HostPort[] = [];
  milter: ListenAddress[] = [];
  policy: ListenAddress[] = [];
  /** Bans, alerts, the journal (undefined before start). */
  services: PrimaryServices | undefined;
  controls: BansAdmin | undefined;
  alerts: PrimaryServices['alerts'] | undefined;
  restarts = 0;
  private readonly slots = new Map<number, Slot>();
  private readonly reports = new Map<string, WorkerStats>();
  private stopping = false;
  /** True once every worker of the start listens: from then on a worker that dies is started again. */
  private running = false;
  private nextStatsId = 1;

  readonly recorder = {
    decisionCounts: new Map<string, number>() as ReadonlyMap<string, number>,
    recentFirings: (limit?: number) => agg.recentFirings(this.reports, limit),
    storeFailureCount: () => [...this.reports.values()].reduce((n, r) => n + r.storeFailures, 0),
  };
  readonly front = {
    stats: agg.sumFront(this.reports),
    openSessions: () => agg.openSessions(this.reports),
  };
  readonly relay = { stats: () => agg.sumRelay(this.reports, this.config.relay?.kind ?? 'none') };

  constructor(opts: PrimaryOptions) {
    this.config = opts.config;
    this.text = opts.text;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger;
    this.registry = new SeriesRegistry(this.clock);
    this.sessions = new SessionTracker(this.clock);
    this.startedAt = this.clock.now();
  }

  async start(): Promise<void> {
    // Workers accept from the shared listening socket themselves (as Postfix's smtpd processes
    // do): the primary handing out each connection (round-robin) costs ~100 µs of CPU per
    // connection in the primary and the worker, measured. NODE_CLUSTER_SCHED_POLICY=rr asks for it.
    if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
    applySeries(this.registry, this.config);
    ({ persister: this.persister, logWriter: this.logWriter } = startPersistence({ registry: this.registry, config: () => this.config, logger: this.logger, clock: this.clock }));
    try {
      this.store = await createStore({ config: this.config, registry: this.registry, clock: this.clock, logger: this.logger });
      this.applier = new BatchApplier(this.store, this.sessions, this.logger);
      await this.startServices();
      await prepareMtaSockets(this.config);
      const n = workerCount(this.config);
      await Promise.all(Array.from({ length: n }, (_, i) => this.fork(String(i + 1))));
      this.admin = await startAdmin(this);
    } catch (err) {
      await this.close(0).catch(() => {});
      throw err;
    }
    this.running = true;
    const workers = [...this.slots.values()].map((s) => s.worker.process.pid);
    const mta = (a: ListenAddress[]) => (a.length ? a.map(formatListenAddress) : undefined);
    this.logger.info(
      { listen: this.listen, milter: mta(this.milter), policy_service: mta(this.policy), admin: this.admin?.address(), relay: relayUrls(this.config), series: this.registry.list().length, workers },
      'auditgate listening',
    );
  }

  /** Bans, alerts and the journal, before any worker starts. */
  private async startServices(): Promise<void> {
    const services = new PrimaryServices({
      config: this.config,
      store: this.store,
      sessions: this.sessions,
      clock: this.clock,
      logger: this.logger,
      broadcast: (changes) => this.broadcast(changes),
      settle: () => this.refresh(),
      workersRefused: () => [...this.reports.values()].reduce((n, r) => n + r.bansRefused, 0),
    });
    this.services = services;
    await services.start();
    this.controls = services.controls;
    this.alerts = services.alerts;
  }

  /** Ban changes to every worker (one that starts later gets the bans in force with its config). */
  private broadcast(changes: BanChange[]): void {
    for (const slot of this.slots.values()) this.send(slot, { ag: 'bans', changes });
  }

  /** The journal writer's figures; lines the workers dropped before sending them count as dropped. */
  journalStats(): ReturnType<PrimaryServices['journalStats']> {
    const stats = this.services?.journalStats();
    if (!stats) return undefined;
    return { ...stats, dropped: stats.dropped + [...this.reports.values()].reduce((n, r) => n + r.journalDropped, 0) };
  }

  /** Starts worker `index` and resolves with its pid when it listens. */
  private fork(index: string): Promise<number | undefined> {
    const worker = cluster.fork({ AUDITGATE_WORKER: index });
    return new Promise((resolve, reject) => {
      const slot: Slot = {
        index,
        worker,
        startedAt: Date.now(),
        ready: false,
        exited: new Promise((r) => worker.once('exit', () => r())),
        started: { resolve: () => resolve(worker.process.pid), reject },
        acks: [],
        stats: new Map(),
      };
      this.slots.set(worker.id, slot);
      worker.on('message', (raw: unknown) => void this.onMessage(slot, raw));
      worker.on('error', (err) => this.logger.debug({ err, worker: index }, 'worker channel error'));
      worker.once('exit', (code, signal) => this.onExit(slot, code, signal));
    });
  }

  private send(slot: Slot, msg: PrimaryMessage): void {
    if (slot.worker.isConnected()) slot.worker.send(msg, undefined, () => undefined);
  }

  private async onMessage(slot: Slot, raw: unknown): Promise<void> {
    const msg: WorkerMessage | undefined = readWorkerMessage(raw);
    if (!msg) return this.unreadable(slot, raw);
    switch (msg.ag) {
      case 'batch': {
        // every batch that asks is answered (a worker sends its next one when it is): a failure
        // answers no results, which fails each waiting call
        const failed = (err: unknown): OpResult[] => {
          this.logger.error({ err, worker: slot.index }, 'applying a worker batch failed');
          return [];
        };
        let results: Maybe<OpResult[]>;
        try {
          results = this.applier.apply(slot.worker.id, msg.ops);
        } catch (err) {
          results = failed(err);
        }
        if (results instanceof Promise) results = await results.catch(failed);
        if (msg.id) this.send(slot, { ag: 'answer', id: msg.id, results });
        return;
      }
      case 'hello':
        this.send(slot, { ag: 'config', text: this.text, file: this.config.file, bans: this.services?.inForce() ?? [] });
        return;
      case 'ready':
        slot.ready = true;
        this.listen = msg.listen;
        this.milter = msg.milter ?? [];
        this.policy = msg.policy ?? [];
        slot.started.resolve();
        return;
      case 'report':
        this.services?.report(msg, (changes) => this.send(slot, { ag: 'bans', changes }));
        for (const e of msg.decisions ?? []) this.events.emit('decision', e);
        return;
      case 'configured':
        if (!slot.ready) slot.started.reject(new ListenError(msg.error ?? 'a worker could not start'));
        for (const ack of slot.acks.splice(0)) ack(msg.error);
        return;
      case 'stats':
        this.reports.set(slot.index, msg.stats);
        for (const [command, seconds] of msg.stats.latencies) this.events.emit('relayLatency', command, seconds);
        slot.stats.get(msg.id)?.();
        slot.stats.delete(msg.id);
        return;
      case 'drained':
        return;
    }
  }

  /** A batch the primary cannot read (a bug) is answered with no results, so its calls fail instead of waiting for ever. */
  private unreadable(slot: Slot, raw: unknown): void {
    const id = batchId(raw);
    if (!id) return;
    this.logger.error({ worker: slot.index, id }, 'a worker sent a batch the primary cannot read');
    this.send(slot, { ag: 'answer', id, results: [] });
  }

  private onExit(slot: Slot, code: number | null, signal: string | null): void {
    this.slots.delete(slot.worker.id);
    this.reports.delete(slot.index);
    const lost = this.applier?.releaseWorker(slot.worker.id) ?? 0;
    for (const ack of slot.acks.splice(0)) ack('the worker exited');
    for (const done of slot.stats.values()) done();
    if (!slot.ready) slot.started.reject(new ListenError(`worker ${slot.index} exited before it listened (code ${code}, signal ${signal})`));
    if (this.stopping || !this.running) return;
    this.restarts++;
    const delay = Date.now() - slot.startedAt < RESTART_BACKOFF_MS ? RESTART_BACKOFF_MS : 0;
    this.logger.warn({ worker: slot.index, pid: slot.worker.process.pid, code, signal, sessions_lost: lost, restart_in_ms: delay }, 'worker died; starting it again');
    setTimeout(() => {
      if (this.stopping) return;
      this.fork(slot.index).then(
        (pid) => this.logger.info({ worker: slot.index, pid }, 'worker restarted'),
        (err: unknown) => this.logger.error({ err, worker: slot.index }, 'worker restart failed'),
      );
    }, delay).unref();
  }

  /** Asks every live worker for its figures (bounded wait); the admin listener calls it before each request. */
  async refresh(): Promise<void> {
    const waits = [...this.slots.values()]
      .filter((s) => s.ready)
      .map(
        (slot) =>
          new Promise<void>((resolve) => {
            const id = this.nextStatsId++;
            const t = setTimeout(resolve, STATS_TIMEOUT_MS);
            slot.stats.set(id, () => {
              clearTimeout(t);
              resolve();
            });
            this.send(slot, { ag: 'stats?', id });
          }),
      );
    await Promise.all(waits);
    const decisions = this.recorder.decisionCounts as Map<string, number>;
    decisions.clear();
    for (const [k, n] of agg.sumDecisions(this.reports)) decisions.set(k, n);
    Object.assign(this.front.stats, agg.sumFront(this.reports));
  }

  /** The workers' milter and policy-service fronts, their figures summed per front. */
  mtaFronts(): ReturnType<typeof agg.sumMta> {
    return agg.sumMta(this.reports);
  }

  registerMetrics(registry: Registry): void {
    agg.registerWorkerMetrics(registry, () => this.reports, () => this.restarts);
  }

  adminAddress(): HostPort | undefined {
    return this.admin?.address();
  }

  /**
   * Applies a validated config here (series, store routing, admin listener) and in every worker
   * (the same text). What needs a restart (listen addresses, Redis, the number of workers) is
   * refused as a whole, for everyone.
   */
  async reload(config: Config, text: string): Promise<void> {
    checkReload(this.config, config, this.store, workerCount(config) !== workerCount(this.config) ? ['server.workers'] : []);
    const defs = applySeries(this.registry, config);
    await this.services?.reload(config);
    const adminChanged = JSON.stringify(config.admin) !== JSON.stringify(this.config.admin);
    this.config = config;
    this.text = text;
    if (this.store instanceof RoutingStore) this.store.reconfigure(config);
    const errors = await Promise.all([...this.slots.values()].map((slot) => this.configure(slot)));
    const failed = errors.filter((e) => e !== undefined);
    if (adminChanged) this.admin = await rebindAdmin(this, this.admin);
    if (failed.length) this.logger.error({ file: config.file, errors: failed }, 'a worker could not apply the reloaded configuration');
    this.logger.info({ file: config.file, series: defs.length, policies: config.policies.length, workers: this.slots.size - failed.length }, 'configuration reloaded');
  }

  private configure(slot: Slot): Promise<string | undefined> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(`worker ${slot.index}: no answer`), ANSWER_TIMEOUT_MS);
      slot.acks.push((error) => {
        clearTimeout(t);
        resolve(error === undefined ? undefined : `worker ${slot.index}: ${error}`);
      });
      this.send(slot, { ag: 'config', text: this.text, file: this.config.file });
    });
  }

  /** Drains every worker (at most `drainMs`, then kills), then saves and closes what the primary owns. */
  async close(drainMs = 10_000): Promise<void> {
    this.stopping = true;
    const slots = [...this.slots.values()];
    for (const slot of slots) this.send(slot, { ag: 'drain', ms: drainMs });
    await Promise.all(
      slots.map(async (slot) => {
        const t = setTimeout(() => slot.worker.process.kill('SIGKILL'), drainMs + 5000);
        // its channel closed too: every message it sent (its last journal lines) was handled
        const disconnected = new Promise<void>((r) => (slot.worker.isConnected() ? slot.worker.once('disconnect', () => r()) : r()));
        await Promise.all([slot.exited, disconnected]);
        clearTimeout(t);
      }),
    );
    await this.admin?.close().catch(() => {});
    await this.services?.close();
    await this.persister?.stop().catch((err: unknown) => this.logger.error({ err }, 'saving persisted series failed'));
    await this.logWriter?.stop().catch((err: unknown) => this.logger.error({ err }, 'flushing series logs failed'));
    await this.store?.close().catch(() => {});
    this.logger.info('auditgate stopped');
  }
}
