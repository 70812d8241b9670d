/**
 * The Redis link of the Redis store (redis-store.ts): this node's adds shipped in batches, and
 * the connection's health.
 *
 * Adds are batched per node: flushed every `maxDelayMs` or every `maxPending` adds, as one
 * atomic Lua call per series (at most once: each batch carries a per-node sequence number; see
 * redis-pending.ts). Key layout and TTLs: redis-layout.ts. Scripts: redis-scripts.ts.
 *
 * Redis unreachable or slow (a command timed out): the store switches to state 'fallback',
 * logs once, and probes in the background. With on_error: local, counts come from the local
 * memory series (every add is mirrored there) and adds are buffered (bounded, `maxBuffered`
 * distinct key×window entries; past it new keys are counted locally only and `dropped` grows);
 * when Redis answers again the buffer is merged back and the state returns to 'ok'. With
 * on_error: accept | tempfail, counts and adds throw a StoreError at once while Redis is
 * unavailable (adds are still buffered for the merge), so the caller decides.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { StoreOnError } from '../config/vocabulary.js';
import { StoreError, UnknownSeriesError } from '../errors.js';
import type { Clock } from '../series/clock.js';
import type { SeriesRegistry } from '../series/registry.js';
import type { StoreStatus } from './types.js';
import {
  type RedisClient,
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  closeClient,
  createRedisClient,
  scripts,
  waitReady,
} from './redis-connect.js';
import { KeyLayout, type ReplicatedSeries } from './redis-layout.js';
import { type Batch, PendingAdds, batchCall } from './redis-pending.js';
import { distinctBatchCall } from './redis-distinct.js';
import { type Runtime, runtimeFor } from './redis-runtime.js';
import type { RedisStoreOptions } from './redis-options.js';

/** Flush rounds run back to back before leaving the rest to the timer. */
const MAX_FLUSH_ROUNDS = 64;

export abstract class RedisLink {
  readonly client: RedisClient;
  readonly layout: KeyLayout;
  readonly nodeId: string;
  protected readonly runtimes = new Map<string, Runtime>();
  protected readonly clock: Clock;
  protected readonly logger: Logger | undefined;
  protected readonly registry: SeriesRegistry | undefined;
  protected readonly onError: StoreOnError;
  private readonly maxDelayMs: number;
  protected readonly maxPending: number;
  protected readonly commandTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly probeIntervalMs: number;
  private readonly maxBuffered: number;
  protected readonly central: boolean;
  protected readonly cluster: boolean;
  /** This node's adds Redis has not applied yet. */
  protected readonly adds: PendingAdds;

  private flushTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private flushAgain = false;
  /** Flush rounds started and finished since start (shipNow: has a round taken my adds?). */
  private roundsStarted = 0;
  private roundsDone = 0;
  private probing: Promise<void> | undefined;
  /** Batches may be sent (Redis answered the last time we asked). */
  private sendable = true;
  protected state: 'ok' | 'fallback' = 'ok';
  private since: number;
  private errors = 0;
  private dropped = 0;
  private droppedLogged = false;
  /** Adds Redis dropped because a window's leaf hash held max_keys fields, since start. */
  private capped = 0;
  /** Series whose capping was logged (once each). */
  private readonly cappedLogged = new Set<string>();
  private lastError: string | undefined;
  private closing = false;
  private closed = false;

  constructor(opts: RedisStoreOptions) {
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.registry = opts.registry;
    this.onError = opts.onError ?? 'local';
    this.maxDelayMs = Math.max(0, opts.maxDelayMs ?? 1000);
    this.maxPending = Math.max(1, opts.maxPending ?? 100);
    this.commandTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.probeIntervalMs = opts.probeIntervalMs ?? 1000;
    this.maxBuffered = opts.maxBuffered ?? 100_000;
    this.adds = new PendingAdds(this.commandTimeoutMs * 8 + 1000, this.maxBuffered);
    this.central = opts.central ?? false;
    this.layout = new KeyLayout(opts.keyPrefix);
    this.nodeId = opts.nodeId ?? randomBytes(6).toString('hex');
    this.since = this.clock.now();
    this.configure(opts.series);
    this.cluster = typeof opts.redis !== 'string';
    this.client = createRedisClient(opts.redis, {
      commandTimeoutMs: this.commandTimeoutMs,
      connectTimeoutMs: this.connectTimeoutMs,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  }

  protected async start(): Promise<void> {
    if (!(await waitReady(this.client, this.connectTimeoutMs))) {
      this.fail(new Error(`not reachable within ${this.connectTimeoutMs} ms at start`), 'connect');
    }
  }
  /**
   * Replaces the series definitions (a config reload). Adds not yet shipped of a series that
   * was dropped or changed shape (type, interval, windows, store_prefix) are discarded.
   */
  configure(series: readonly ReplicatedSeries[]): void {
    const before = new Map(this.runtimes);
    this.runtimes.clear();
    for (const spec of series) this.runtimes.set(spec.name, runtimeFor(spec, this.central));
    const keep = (name: string): boolean => {
      const a = before.get(name)?.spec;
      const b = this.runtimes.get(name)?.spec;
      return !!a && !!b && a.type === b.type && a.interval === b.interval && a.windows === b.windows && a.store_prefix === b.store_prefix;
    };
    this.adds.retain(keep);
  }

  /** Names of the series this store serves. */
  seriesNames(): string[] {
    return [...this.runtimes.keys()];
  }

  serves(series: string): boolean {
    return this.runtimes.has(series);
  }

  status(): StoreStatus {
    const pending = this.adds.waiting();
    const st: StoreStatus = {
      kind: this.cluster ? 'redis-cluster' : 'redis',
      state: this.state,
      since: this.since,
      errors: this.errors,
      pending,
      dropped: this.dropped,
      capped: this.capped,
      onError: this.onError,
    };
    if (this.lastError !== undefined) st.lastError = this.lastError;
    return st;
  }

  /** Keeps an add (a distinct series' value) for shipping; one that does not fit the bounded buffer is counted (dropped) and logged once per outage. */
  protected keep(rt: Runtime, w: number, field: string, words: Uint32Array | undefined, delta: number, value?: string): void {
    if (this.adds.put(rt, w, field, words, delta, value)) return;
    this.dropped++;
    if (!this.droppedLogged) {
      this.droppedLogged = true;
      this.logger?.warn(
        { maxBuffered: this.maxBuffered, series: rt.spec.name },
        'redis merge buffer full: adds for new keys are counted locally only until Redis is back',
      );
    }
  }

  protected scheduleFlush(): void {
    if (this.closing || !this.sendable) return;
    if (this.adds.pendingOps >= this.maxPending || this.maxDelayMs === 0) {
      void this.flush();
    } else if (!this.flushTimer && this.adds.pendingOps > 0) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush();
      }, this.maxDelayMs);
      this.flushTimer.unref();
    }
  }

  /**
   * Ships every buffered add to Redis; resolves when Redis acknowledged them or the store has
   * switched to fallback (the adds then wait for the merge). Never rejects.
   */
  flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Ships the adds made so far and waits until Redis applied them (also past a flush's hand-over); false: Redis failed. */
  protected async shipNow(): Promise<boolean> {
    const mine = this.roundsStarted + 1; // the first round to start after this call takes the adds made so far
    for (let tries = 0; tries < 4 && this.sendable; tries++) {
      await this.flush();
      if (this.roundsDone >= mine) return this.sendable && !this.adds.retrying();
    }
    return false;
  }

  private async flushLoop(): Promise<void> {
    for (let round = 0; round < MAX_FLUSH_ROUNDS; round++) {
      this.flushAgain = false;
      if (!this.sendable) return;
      if (this.flushTimer) {
        clearTimeout(this.flushTimer);
        this.flushTimer = undefined;
      }
      this.roundsStarted++;
      const batches = this.adds.take(this.runtimes, (rt) => this.windowNow(rt));
      if (batches.length > 0) await this.sendBatches(batches);
      this.roundsDone++;
      if (batches.length === 0 || !this.flushAgain) return;
    }
    // Adds keep arriving: hand over to a fresh flush on the next turn of the event loop.
    setImmediate(() => {
      if (!this.closed) void this.flush();
    });
  }

  /** Series in parallel; the batches of one series strictly in order, stopping at the first failure. */
  private async sendBatches(batches: Batch[]): Promise<void> {
    const bySeries = new Map<string, Batch[]>();
    for (const b of batches) {
      const list = bySeries.get(b.rt.spec.name);
      if (list) list.push(b);
      else bySeries.set(b.rt.spec.name, [b]);
    }
    await Promise.all(
      [...bySeries.values()].map(async (list) => {
        for (let k = 0; k < list.length; k++) {
          if (!this.sendable) {
            this.adds.requeue(list.slice(k));
            return;
          }
          const b = list[k]!;
          const sent = this.adds.sentList(b.rt);
          sent.push(b);
          try {
            const [, dropped] = await this.deadline(this.sendBatch(b), 'flush', this.commandTimeoutMs * 2);
            b.ackedAt = performance.now();
            if (dropped > 0) this.noteCapped(b.rt, Number(dropped));
          } catch (err) {
            const at = sent.indexOf(b);
            if (at >= 0) sent.splice(at, 1);
            this.adds.requeue(list.slice(k));
            this.fail(err, 'flush');
            return;
          }
        }
      }),
    );
  }

  /** Redis refused new keys of a full window (max_keys): counted, and logged once per series. */
  private noteCapped(rt: Runtime, n: number): void {
    this.capped += n;
    if (this.cappedLogged.has(rt.spec.name)) return;
    this.cappedLogged.add(rt.spec.name);
    this.logger?.warn(
      { series: rt.spec.name, max_keys: rt.spec.max_keys, dropped: n },
      'redis: a window of this series holds max_keys keys; adds for new keys are not stored until the next window (prefix aggregates still count them)',
    );
  }

  private sendBatch(b: Batch): Promise<[number, number]> {
    if (b.rt.spec.distinct) {
      const [keys, args] = distinctBatchCall(this.layout, this.nodeId, b);
      return scripts(this.client).agAddDistinct(keys.length, ...keys, ...args);
    }
    const [keys, args] = batchCall(this.layout, this.nodeId, b);
    return scripts(this.client).agAdd(keys.length, ...keys, ...args);
  }

  protected fail(err: unknown, what: string): void {
    this.errors++;
    this.lastError = `${what}: ${err instanceof Error ? err.message : String(err)}`;
    this.sendable = false;
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.state === 'ok') {
      this.state = 'fallback';
      this.since = this.clock.now();
      this.dropped = 0;
      this.droppedLogged = false;
      this.logger?.warn(
        { err: this.lastError, on_error: this.onError },
        this.onError === 'local'
          ? 'redis unavailable: counting in process (on_error: local); adds are buffered and merged back when it returns'
          : `redis unavailable: counts fail with ${StoreError.name} (on_error: ${this.onError}); adds are buffered and merged back when it returns`,
      );
    } else {
      this.logger?.debug({ err: this.lastError }, 'redis still unavailable');
    }
    if (!this.probeTimer && !this.closing) {
      this.probeTimer = setInterval(() => void this.probe(), this.probeIntervalMs);
      this.probeTimer.unref();
    }
  }

  /** Asks Redis once; when it answers, merges the buffered adds back and returns to 'ok'. */
  probe(): Promise<void> {
    if (this.probing) return this.probing;
    this.probing = this.recover().finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  private async recover(): Promise<void> {
    if (this.state === 'ok' || this.closed) return;
    try {
      // A cluster not ready would queue the ping: ask again at the next probe instead.
      if (this.cluster && this.client.status !== 'ready') throw new Error(`cluster is ${this.client.status}`);
      await this.deadline(this.client.ping(), 'ping');
    } catch (err) {
      this.fail(err, 'ping');
      return;
    }
    const outage = this.clock.now() - this.since;
    const merged = this.status().pending;
    this.sendable = true;
    await this.flush();
    if (!this.sendable || this.adds.retrying()) return; // failed again: stays in fallback
    this.state = 'ok';
    this.since = this.clock.now();
    if (this.probeTimer) {
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
    }
    this.logger?.info({ merged, dropped: this.dropped, outage_ms: outage }, 'redis is back: adds made during the outage merged');
    this.scheduleFlush();
  }

  protected checkFallback(what: string): void {
    if (this.onError !== 'local' || !this.registry) throw this.unavailableError(what);
  }

  protected unavailableError(what: string, cause?: unknown): StoreError {
    return new StoreError(`redis unavailable (on_error: ${this.onError}): ${what}${this.lastError ? `; last error: ${this.lastError}` : ''}`, {
      cause: cause ?? this.lastError,
    });
  }

  protected deadline<T>(p: Promise<T>, what: string, ms = this.commandTimeoutMs + 250): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreError(`redis ${what} timed out after ${ms} ms`)), ms);
    });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  }

  /** Flushes what is buffered (one merge attempt when Redis is unavailable) and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    if (this.state === 'ok') await this.flush();
    else await this.probe();
    this.closed = true;
    const left = this.status().pending;
    if (left > 0) this.logger?.warn({ pending: left }, 'redis store closed with adds not shipped (they were counted locally only)');
    await closeClient(this.client, this.commandTimeoutMs);
  }

  protected runtime(series: string): Runtime {
    const rt = this.runtimes.get(series);
    if (!rt) throw new UnknownSeriesError(series);
    return rt;
  }

  /** Absolute window number of window 0 for a series, from the injected clock. */
  protected windowNow(rt: Runtime): number {
    return Math.floor(this.clock.now() / rt.intervalMs);
  }
}
