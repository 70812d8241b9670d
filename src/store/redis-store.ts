/**
 * The Redis store: series with replicate: cluster | manager.
 *
 * - cluster: counts come from Redis, so every node's adds are seen by every node. A count on
 *   the node that made an add includes its own adds not yet shipped (local throttling is never
 *   late).
 * - manager: counts (decisions) come from the local memory series; adds are also shipped to
 *   Redis so a central view sees the whole cluster.
 * - central view (`central: true`, see createRedisView): every series is read from Redis; what
 *   an admin tool or CLI pointed at Redis uses.
 *
 * Adds are batched per node: flushed every `maxDelayMs` or every `maxPending` adds, as one
 * atomic Lua call per series (at most once: each batch carries a per-node sequence number).
 * Key layout and TTLs: redis-layout.ts. Scripts: redis-scripts.ts.
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
import { replicatedSeries } from '../config/catalogue.js';
import type { Config } from '../config/types.js';
import type { StoreOnError } from '../config/vocabulary.js';
import { InvalidKeyError, StoreError, UnknownSeriesError, WindowRangeError } from '../errors.js';
import { FAMILY_BITS, type Family, applyMask, formatPrefix, parsePrefix, prefixContains } from '../series/address.js';
import type { Clock } from '../series/clock.js';
import type { AuditSeries } from '../series/index.js';
import type { SeriesRegistry } from '../series/registry.js';
import { MAX_STRING_KEY_LENGTH } from '../series/string-series.js';
import { TopK } from '../series/topk.js';
import type { TopEntry, TopOptions } from '../series/types.js';
import { MAX_COUNT, MIN_COUNT } from '../series/windowed.js';
import {
  type RedisClient,
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  closeClient,
  createRedisClient,
  scripts,
  waitReady,
} from './redis-connect.js';
import { KeyLayout, type ReplicatedSeries, familyOf, leafBitsOf, ttlSeconds } from './redis-layout.js';
import type { AddOp, CountQuery, ManagedStore, StoreStatus } from './types.js';

export interface RedisStoreOptions {
  /** A Redis URL, or a list of Redis Cluster node URLs. */
  redis: string | readonly string[];
  series: readonly ReplicatedSeries[];
  clock: Clock;
  logger?: Logger;
  /** The in-process series: the local mirror (fallback) and the decision source for manager series. */
  registry?: SeriesRegistry;
  /** Default 'local'. */
  onError?: StoreOnError;
  /** Longest wait before buffered adds are shipped. Default 1000. */
  maxDelayMs?: number;
  /** Adds that trigger a flush. Default 100. */
  maxPending?: number;
  /** Prefix of every key. Default "ag:". */
  keyPrefix?: string;
  /** Default 500 ms. */
  commandTimeoutMs?: number;
  /** Default 2000 ms; also how long connect() waits before starting in fallback. */
  connectTimeoutMs?: number;
  /** How often an unavailable Redis is retried. Default 1000 ms. */
  probeIntervalMs?: number;
  /** Distinct key×window entries buffered while Redis is unavailable. Default 100,000. */
  maxBuffered?: number;
  /** Read every series from Redis (manager series too); no local fallback. */
  central?: boolean;
  /** Identifies this node's batches in Redis. Default: random. */
  nodeId?: string;
}

interface Runtime {
  spec: ReplicatedSeries;
  family: Family | undefined;
  nwords: number;
  leafBits: number;
  masksText: string;
  ttl: number;
  intervalMs: number;
  /** Counts come from the local memory series (manager, not central). */
  readLocal: boolean;
}

interface PendingEntry {
  field: string;
  /** cidr types: the stored key's words (masked to leafBits). */
  words: Uint32Array | undefined;
  delta: number;
  ops: number;
}

/** absolute window → field → entry */
type Windows = Map<number, Map<string, PendingEntry>>;

interface Batch {
  rt: Runtime;
  seq: number;
  windows: Windows;
  entries: number;
  ops: number;
  /** performance.now() when Redis acknowledged it. */
  ackedAt?: number;
}

interface Query {
  rt: Runtime;
  /** 'l': a stored key (leaf field); 'a': a prefix shorter than the stored key. */
  kind: 'l' | 'a';
  field: string;
  mask: number;
  words: Uint32Array | undefined;
  startv: number;
  last: number;
}

/** Entries per Lua call: keeps each script short (Redis runs scripts one at a time). */
const MAX_BATCH_ENTRIES = 1000;
/** Flush rounds run back to back before leaving the rest to the timer. */
const MAX_FLUSH_ROUNDS = 64;

export class RedisSeriesStore implements ManagedStore {
  readonly kind = 'redis';
  readonly client: RedisClient;
  readonly layout: KeyLayout;
  readonly nodeId: string;
  private readonly runtimes = new Map<string, Runtime>();
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly registry: SeriesRegistry | undefined;
  private readonly onError: StoreOnError;
  private readonly maxDelayMs: number;
  private readonly maxPending: number;
  private readonly commandTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly probeIntervalMs: number;
  private readonly maxBuffered: number;
  private readonly central: boolean;
  private readonly cluster: boolean;

  private pending = new Map<string, Windows>();
  /** Adds since the last flush (the max_pending trigger). */
  private pendingOps = 0;
  /** Batches sent that failed: resent first, in order, with their sequence numbers. */
  private retry: Batch[] = [];
  /**
   * Per series: batches sent and not yet acknowledged, or acknowledged within the last
   * `ackRetentionMs`. A count adds those whose sequence number is above the one Redis reports
   * as applied (read atomically with the counts), so its own adds are counted exactly once
   * whatever order commands reach Redis in (Cluster redirects, retries, timeouts).
   */
  private sent = new Map<string, Batch[]>();
  private readonly ackRetentionMs: number;
  /** Distinct entries in pending + retry (the bound). */
  private buffered = 0;
  private seq = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private flushAgain = false;
  private probing: Promise<void> | undefined;
  /** Batches may be sent (Redis answered the last time we asked). */
  private sendable = true;
  private state: 'ok' | 'fallback' = 'ok';
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
    this.ackRetentionMs = this.commandTimeoutMs * 8 + 1000;
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

  /** Creates the store and waits (at most connectTimeoutMs) for Redis; unreachable means fallback from the start. */
  static async connect(opts: RedisStoreOptions): Promise<RedisSeriesStore> {
    const s = new RedisSeriesStore(opts);
    await s.start();
    return s;
  }

  private async start(): Promise<void> {
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
    for (const spec of series) {
      const family = familyOf(spec.type);
      const masks = [...new Set(spec.masks)].filter((m) => family === undefined || m < leafBitsOf(spec)).sort((a, b) => a - b);
      if (family !== undefined && !masks.includes(0)) masks.unshift(0);
      this.runtimes.set(spec.name, {
        spec: { ...spec, masks },
        family,
        nwords: family === 6 ? 4 : 1,
        leafBits: leafBitsOf(spec),
        masksText: family === undefined ? '' : masks.join(','),
        ttl: ttlSeconds(spec),
        intervalMs: spec.interval * 1000,
        readLocal: spec.replicate === 'manager' && !this.central,
      });
    }
    const keep = (name: string): boolean => {
      const a = before.get(name)?.spec;
      const b = this.runtimes.get(name)?.spec;
      return !!a && !!b && a.type === b.type && a.interval === b.interval && a.windows === b.windows && a.store_prefix === b.store_prefix;
    };
    for (const name of [...this.pending.keys()]) {
      if (keep(name)) continue;
      for (const m of this.pending.get(name)!.values()) this.buffered -= m.size;
      this.pending.delete(name);
    }
    for (const name of [...this.sent.keys()]) if (!keep(name)) this.sent.delete(name);
    this.retry = this.retry.filter((b) => {
      if (keep(b.rt.spec.name)) return true;
      this.buffered -= b.entries;
      return false;
    });
  }

  /** Names of the series this store serves. */
  seriesNames(): string[] {
    return [...this.runtimes.keys()];
  }

  serves(series: string): boolean {
    return this.runtimes.has(series);
  }

  status(): StoreStatus {
    let pending = 0;
    for (const wins of this.pending.values()) for (const m of wins.values()) for (const e of m.values()) pending += e.ops;
    for (const b of this.retry) pending += b.ops;
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

  // ---- adds ------------------------------------------------------------------------------

  async add(series: string, key: string, count = 1): Promise<void> {
    this.addOne(series, key, count);
    this.afterAdds();
  }

  async addMany(ops: readonly AddOp[]): Promise<void> {
    try {
      for (const op of ops) this.addOne(op.series, op.key, op.count);
    } catch (err) {
      if (this.state === 'ok') this.scheduleFlush();
      throw err;
    }
    this.afterAdds();
  }

  private addOne(series: string, key: string, count: number): void {
    const rt = this.runtime(series);
    checkCount(rt, count);
    const leaf = this.leafOf(rt, key);
    if (!leaf) return; // the other address family: ignored, as the memory series does
    this.local(rt)?.add(key, count);
    this.buffer(rt, this.windowNow(rt), leaf.field, leaf.words, count);
    this.pendingOps++;
  }

  private afterAdds(): void {
    if (this.state !== 'ok') {
      if (this.onError !== 'local') throw this.unavailableError('add (kept for the merge)');
      return;
    }
    this.scheduleFlush();
  }

  private buffer(rt: Runtime, w: number, field: string, words: Uint32Array | undefined, delta: number): void {
    let wins = this.pending.get(rt.spec.name);
    if (!wins) this.pending.set(rt.spec.name, (wins = new Map()));
    let m = wins.get(w);
    if (!m) wins.set(w, (m = new Map()));
    const e = m.get(field);
    if (e) {
      e.delta += delta;
      e.ops++;
      return;
    }
    if (this.buffered >= this.maxBuffered) {
      this.dropped++;
      if (!this.droppedLogged) {
        this.droppedLogged = true;
        this.logger?.warn(
          { maxBuffered: this.maxBuffered, series: rt.spec.name },
          'redis merge buffer full: adds for new keys are counted locally only until Redis is back',
        );
      }
      return;
    }
    m.set(field, { field, words, delta, ops: 1 });
    this.buffered++;
  }

  private scheduleFlush(): void {
    if (this.closing || !this.sendable) return;
    if (this.pendingOps >= this.maxPending || this.maxDelayMs === 0) {
      void this.flush();
    } else if (!this.flushTimer && this.pendingOps > 0) {
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

  private async flushLoop(): Promise<void> {
    for (let round = 0; round < MAX_FLUSH_ROUNDS; round++) {
      this.flushAgain = false;
      if (!this.sendable) return;
      if (this.flushTimer) {
        clearTimeout(this.flushTimer);
        this.flushTimer = undefined;
      }
      const batches = this.takeBatches();
      if (batches.length === 0) return;
      await this.sendBatches(batches);
      if (!this.flushAgain) return;
    }
    // Adds keep arriving: hand over to a fresh flush on the next turn of the event loop.
    setImmediate(() => {
      if (!this.closed) void this.flush();
    });
  }

  /** Retry batches first (their sequence numbers kept), then the pending adds in chunks. */
  private takeBatches(): Batch[] {
    const out = this.retry;
    this.retry = [];
    for (const [name, wins] of this.pending) {
      const rt = this.runtimes.get(name);
      if (!rt) continue;
      // Windows that aged out of the series while waiting (a long outage) are not worth sending.
      const oldest = this.windowNow(rt) - rt.spec.windows + 1;
      let cur: Batch | undefined;
      for (const [w, m] of wins) {
        if (w < oldest) continue;
        for (const e of m.values()) {
          if (!cur || cur.entries >= MAX_BATCH_ENTRIES) {
            cur = { rt, seq: ++this.seq, windows: new Map(), entries: 0, ops: 0 };
            out.push(cur);
          }
          let bm = cur.windows.get(w);
          if (!bm) cur.windows.set(w, (bm = new Map()));
          bm.set(e.field, e);
          cur.entries++;
          cur.ops += e.ops;
        }
      }
    }
    this.pending = new Map();
    this.pendingOps = 0;
    this.buffered = 0;
    return out;
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
            this.requeue(list.slice(k));
            return;
          }
          const b = list[k]!;
          const sent = this.sentList(b.rt);
          sent.push(b);
          try {
            const [, dropped] = await this.deadline(this.sendBatch(b), 'flush', this.commandTimeoutMs * 2);
            b.ackedAt = performance.now();
            if (dropped > 0) this.noteCapped(b.rt, Number(dropped));
          } catch (err) {
            const at = sent.indexOf(b);
            if (at >= 0) sent.splice(at, 1);
            this.requeue(list.slice(k));
            this.fail(err, 'flush');
            return;
          }
        }
      }),
    );
  }

  /** The batches of a series sent and not acknowledged, or acknowledged within ackRetentionMs. */
  private sentList(rt: Runtime): Batch[] {
    let list = this.sent.get(rt.spec.name);
    if (!list) this.sent.set(rt.spec.name, (list = []));
    const old = performance.now() - this.ackRetentionMs;
    while (list.length > 0 && list[0]!.ackedAt !== undefined && list[0]!.ackedAt < old) list.shift();
    return list;
  }

  private requeue(batches: Batch[]): void {
    for (const b of batches) {
      this.retry.push(b);
      this.buffered += b.entries;
    }
    this.retry.sort((a, b) => a.seq - b.seq);
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
    const { rt } = b;
    const keys: string[] = [this.layout.seq(rt.spec, this.nodeId)];
    const args: Array<string | number> = [b.seq, rt.ttl, rt.masksText, rt.spec.max_keys];
    const scratch = new Uint32Array(4);
    for (const [w, m] of b.windows) {
      keys.push(this.layout.leaf(rt.spec, w), this.layout.agg(rt.spec, w));
      const leaves: Array<string | number> = [];
      const aggs = new Map<string, number>();
      for (const e of m.values()) {
        if (e.delta === 0) continue;
        leaves.push(e.field, e.delta);
        if (rt.family !== undefined) {
          for (const mask of rt.spec.masks) {
            scratch.set(e.words!);
            applyMask(scratch, rt.family, mask);
            const f = formatPrefix(rt.family, scratch, mask);
            aggs.set(f, (aggs.get(f) ?? 0) + e.delta);
          }
        }
      }
      args.push(leaves.length / 2, aggs.size, ...leaves);
      for (const [f, d] of aggs) args.push(f, d);
    }
    return scripts(this.client).agAdd(keys.length, ...keys, ...args);
  }

  // ---- counts ----------------------------------------------------------------------------

  async count(series: string, key: string, startv = 0, endv = startv): Promise<number> {
    const [n] = await this.countMany([{ series, key, startv, endv }]);
    return n!;
  }

  async countMany(queries: readonly CountQuery[]): Promise<number[]> {
    const out = new Array<number>(queries.length).fill(0);
    const remote: Array<{ i: number; q: Query; src: CountQuery }> = [];
    queries.forEach((src, i) => {
      const rt = this.runtime(src.series);
      const q = this.compile(rt, src.key, src.startv, src.endv);
      if (!q) return;
      if (rt.readLocal) out[i] = this.localOrThrow(rt).count(src.key, src.startv, src.endv);
      else remote.push({ i, q, src });
    });
    if (remote.length === 0) return out;
    let counts: number[] | undefined;
    if (this.state === 'ok') {
      try {
        counts = await this.countRemote(remote.map((r) => r.q));
      } catch (err) {
        this.fail(err, 'count');
      }
    }
    if (counts) remote.forEach((r, j) => (out[r.i] = counts[j]!));
    else {
      this.checkFallback('count');
      for (const r of remote) out[r.i] = this.localOrThrow(r.q.rt).count(r.src.key, r.src.startv, r.src.endv);
    }
    return out;
  }

  /**
   * One Lua call per series (sent together: one round trip). A query at a mask some writer of
   * a window did not keep is summed from the leaves instead (a second round trip).
   */
  private async countRemote(qs: Query[]): Promise<number[]> {
    const groups = new Map<Runtime, number[]>();
    qs.forEach((q, i) => {
      const g = groups.get(q.rt);
      if (g) g.push(i);
      else groups.set(q.rt, [i]);
    });
    const results = new Array<number>(qs.length).fill(0);
    const scans: number[] = [];
    const calls: Array<Promise<void>> = [];
    for (const [rt, idx] of groups) {
      const cur = this.windowNow(rt);
      let vmin = Infinity;
      let vmax = -1;
      for (const i of idx) {
        vmin = Math.min(vmin, qs[i]!.startv);
        vmax = Math.max(vmax, qs[i]!.last);
      }
      const keys: string[] = [this.layout.seq(rt.spec, this.nodeId)];
      for (let v = vmin; v <= vmax; v++) keys.push(this.layout.leaf(rt.spec, cur - v), this.layout.agg(rt.spec, cur - v));
      const args: Array<string | number> = [];
      for (const i of idx) {
        const q = qs[i]!;
        args.push(q.kind, q.field, q.mask, q.startv - vmin + 1, q.last - vmin + 1);
      }
      calls.push(
        scripts(this.client)
          .agCount(keys.length, ...keys, ...args)
          .then(([applied, ...reply]) => {
            idx.forEach((i, j) => {
              const [sum, scan] = reply[j] ?? [0, ''];
              if (scan) scans.push(i);
              else results[i] = Number(sum) + this.ownUnapplied(qs[i]!, cur, Number(applied));
            });
          }),
      );
    }
    await this.deadline(Promise.all(calls), 'count');
    await Promise.all(
      scans.map(async (i) => {
        const q = qs[i]!;
        const { applied, hashes, cur } = await this.readLeaves(q.rt, q.startv, q.last);
        let sum = 0;
        for (const h of hashes) sum += sumMatching(h, q);
        results[i] = sum + this.ownUnapplied(q, cur, applied);
      }),
    );
    return results;
  }

  /** Absolute window number of window 0 for a series, from the injected clock. */
  private windowNow(rt: Runtime): number {
    return Math.floor(this.clock.now() / rt.intervalMs);
  }

  /**
   * Reads the leaf hashes of windows startv..last (window order) and, atomically with them,
   * the last batch of this node Redis applied.
   */
  private async readLeaves(rt: Runtime, startv: number, last: number): Promise<{ applied: number; hashes: Array<Map<string, number>>; cur: number }> {
    const cur = this.windowNow(rt);
    const keys = [this.layout.seq(rt.spec, this.nodeId)];
    for (let v = startv; v <= last; v++) keys.push(this.layout.leaf(rt.spec, cur - v));
    const [applied, ...flat] = await this.deadline(scripts(this.client).agLeaves(keys.length, ...keys), 'read', this.commandTimeoutMs * 4);
    const hashes = flat.map((f) => {
      const m = new Map<string, number>();
      for (let k = 0; k + 1 < f.length; k += 2) m.set(String(f[k]), Number(f[k + 1]));
      return m;
    });
    return { applied: Number(applied), hashes, cur };
  }

  /**
   * This node's adds for a query that Redis has not applied: the pending ones, and the batches
   * sent (or waiting for a retry) with a sequence number above `applied`.
   */
  private ownUnapplied(q: Query, cur: number, applied: number): number {
    let sum = 0;
    const wins = this.pending.get(q.rt.spec.name);
    if (wins) sum += windowsDelta(wins, q, cur);
    for (const b of this.sentList(q.rt)) if (b.seq > applied) sum += windowsDelta(b.windows, q, cur);
    for (const b of this.retry) if (b.rt.spec.name === q.rt.spec.name && b.seq > applied) sum += windowsDelta(b.windows, q, cur);
    return sum;
  }

  // ---- top and remove ----------------------------------------------------------------------

  async top(series: string, opts: TopOptions = {}): Promise<TopEntry[]> {
    const rt = this.runtime(series);
    const full = rt.family === undefined ? 0 : FAMILY_BITS[rt.family];
    const mask = rt.family === undefined ? 0 : Math.min(opts.mask ?? rt.leafBits, rt.leafBits);
    if (rt.family !== undefined && (!Number.isInteger(mask) || mask < 0 || mask > full)) {
      throw new InvalidKeyError(`series "${series}": mask ${opts.mask} is not a prefix length from 0 to ${full}`);
    }
    const startv = opts.startv ?? 0;
    const last = checkRange(rt, startv, opts.endv ?? rt.spec.windows - 1);
    if (rt.readLocal) return this.localOrThrow(rt).top(opts);
    let sums: Map<string, number> | undefined;
    if (this.state === 'ok') {
      try {
        sums = await this.leafSums(rt, startv, last);
      } catch (err) {
        this.fail(err, 'top');
      }
    }
    if (!sums) {
      this.checkFallback('top');
      return this.localOrThrow(rt).top(opts);
    }
    const heap = new TopK(opts.limit ?? 10);
    if (rt.family === undefined || mask === rt.leafBits) {
      for (const [k, c] of sums) heap.offer(k, c);
      return heap.result();
    }
    const groups = new Map<string, number>();
    for (const [k, c] of sums) {
      const p = parsePrefix(k);
      if (!p) continue;
      applyMask(p.words, rt.family, mask);
      const g = formatPrefix(rt.family, p.words, mask);
      groups.set(g, (groups.get(g) ?? 0) + c);
    }
    for (const [k, c] of groups) heap.offer(k, c);
    return heap.result();
  }

  /** Sum per stored key over windows startv..last: Redis plus this node's adds not yet applied. */
  private async leafSums(rt: Runtime, startv: number, last: number): Promise<Map<string, number>> {
    const { applied, hashes, cur } = await this.readLeaves(rt, startv, last);
    const sums = new Map<string, number>();
    for (const h of hashes) for (const [k, c] of h) sums.set(k, (sums.get(k) ?? 0) + c);
    const addWindows = (wins: Windows) => {
      for (const [w, m] of wins) {
        const v = cur - w;
        if (v < startv || v > last) continue;
        for (const e of m.values()) sums.set(e.field, (sums.get(e.field) ?? 0) + e.delta);
      }
    };
    const wins = this.pending.get(rt.spec.name);
    if (wins) addWindows(wins);
    for (const b of this.sentList(rt)) if (b.seq > applied) addWindows(b.windows);
    for (const b of this.retry) if (b.rt.spec.name === rt.spec.name && b.seq > applied) addWindows(b.windows);
    return sums;
  }

  /**
   * Removes a key (for `ip/mask`, every stored key inside it) from every window: in Redis, in
   * the adds not yet shipped and in the local mirror. Returns the distinct keys removed (from
   * the local series for manager series). Redis unavailable: the local part is done and a
   * StoreError says the shared counts still hold the key.
   */
  async removeItem(series: string, key: string): Promise<number> {
    const rt = this.runtime(series);
    let target: { words: Uint32Array | undefined; mask: number; field: string | undefined };
    if (rt.family === undefined) {
      checkStringKey(rt, key);
      target = { words: undefined, mask: 0, field: key };
    } else {
      const p = parsePrefix(key);
      if (!p) throw new InvalidKeyError(`series "${series}": "${key}" is not an IP address or CIDR prefix`);
      if (p.family !== rt.family) return 0;
      if (p.mask >= rt.leafBits) {
        applyMask(p.words, rt.family, rt.leafBits);
        target = { words: p.words, mask: rt.leafBits, field: formatPrefix(rt.family, p.words, rt.leafBits) };
      } else {
        target = { words: p.words, mask: p.mask, field: undefined };
      }
    }
    const matches = (e: { field: string; words: Uint32Array | undefined }): boolean =>
      target.field !== undefined ? e.field === target.field : prefixContains(target.words!, target.mask, e.words!, rt.leafBits, rt.nwords);

    const localRemoved = this.local(rt)?.removeItem(key) ?? 0;
    const removed = new Set<string>();
    const wins = this.pending.get(rt.spec.name);
    if (wins) {
      for (const m of wins.values()) {
        for (const e of [...m.values()]) {
          if (!matches(e)) continue;
          m.delete(e.field);
          this.buffered--;
          removed.add(e.field);
        }
      }
    }
    if (this.state !== 'ok') {
      if (rt.readLocal) return localRemoved;
      throw this.unavailableError('remove (removed locally only; the shared counts still hold it)');
    }
    try {
      for (const f of await this.removeRemote(rt, target.field, matches)) removed.add(f);
    } catch (err) {
      this.fail(err, 'remove');
      if (rt.readLocal) return localRemoved;
      throw this.unavailableError('remove (removed locally only; the shared counts still hold it)', err);
    }
    return rt.readLocal ? localRemoved : removed.size;
  }

  private async removeRemote(
    rt: Runtime,
    exact: string | undefined,
    matches: (e: { field: string; words: Uint32Array | undefined }) => boolean,
  ): Promise<string[]> {
    const cur = this.windowNow(rt);
    const windows: number[] = [];
    for (let v = 0; v < rt.spec.windows; v++) windows.push(cur - v);
    let perWindow: string[][];
    if (exact !== undefined) perWindow = windows.map(() => [exact]);
    else {
      const { hashes } = await this.readLeaves(rt, 0, rt.spec.windows - 1);
      perWindow = hashes.map((h) =>
        [...h.keys()].filter((f) => {
          const p = parsePrefix(f);
          return p !== null && matches({ field: f, words: p.words });
        }),
      );
    }
    const keys: string[] = [];
    const args: Array<string | number> = [rt.masksText, rt.ttl];
    const scratch = new Uint32Array(4);
    windows.forEach((w, k) => {
      const fields = perWindow[k]!;
      if (fields.length === 0) return;
      keys.push(this.layout.leaf(rt.spec, w), this.layout.agg(rt.spec, w));
      args.push(fields.length);
      for (const f of fields) {
        const aggs: string[] = [];
        if (rt.family !== undefined) {
          const p = parsePrefix(f);
          for (const mask of p ? rt.spec.masks : []) {
            scratch.set(p!.words);
            applyMask(scratch, rt.family, mask);
            aggs.push(formatPrefix(rt.family, scratch, mask));
          }
        }
        args.push(f, aggs.length, ...aggs);
      }
    });
    if (keys.length === 0) return [];
    return this.deadline(scripts(this.client).agRemove(keys.length, ...keys, ...args), 'remove');
  }

  // ---- failure and recovery ------------------------------------------------------------------

  private fail(err: unknown, what: string): void {
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
    if (!this.sendable || this.retry.length > 0) return; // failed again: stays in fallback
    this.state = 'ok';
    this.since = this.clock.now();
    if (this.probeTimer) {
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
    }
    this.logger?.info({ merged, dropped: this.dropped, outage_ms: outage }, 'redis is back: adds made during the outage merged');
    this.scheduleFlush();
  }

  private checkFallback(what: string): void {
    if (this.onError !== 'local' || !this.registry) throw this.unavailableError(what);
  }

  private unavailableError(what: string, cause?: unknown): StoreError {
    return new StoreError(`redis unavailable (on_error: ${this.onError}): ${what}${this.lastError ? `; last error: ${this.lastError}` : ''}`, {
      cause: cause ?? this.lastError,
    });
  }

  private deadline<T>(p: Promise<T>, what: string, ms = this.commandTimeoutMs + 250): Promise<T> {
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

  // ---- helpers ---------------------------------------------------------------------------

  private runtime(series: string): Runtime {
    const rt = this.runtimes.get(series);
    if (!rt) throw new UnknownSeriesError(series);
    return rt;
  }

  /** The local memory series of a replicated series (defined on first use if the gateway did not). */
  private local(rt: Runtime): AuditSeries | undefined {
    const reg = this.registry;
    if (!reg || this.central) return undefined;
    if (!reg.has(rt.spec.name)) {
      const s = rt.spec;
      reg.define({
        name: s.name,
        type: s.type,
        interval: s.interval,
        windows: s.windows,
        options: { replicate: s.replicate, max_keys: s.max_keys, ...(s.store_prefix !== undefined ? { store_prefix: s.store_prefix } : {}) },
      });
    }
    return reg.get(rt.spec.name);
  }

  private localOrThrow(rt: Runtime): AuditSeries {
    const s = this.local(rt);
    if (!s) throw this.unavailableError(`no local series "${rt.spec.name}" to fall back to`);
    return s;
  }

  private leafOf(rt: Runtime, key: string): { field: string; words: Uint32Array | undefined } | null {
    if (rt.family === undefined) {
      checkStringKey(rt, key);
      return { field: key, words: undefined };
    }
    const p = parsePrefix(key);
    if (!p) throw new InvalidKeyError(`series "${rt.spec.name}": "${key}" is not an IP address or CIDR prefix`);
    if (p.family !== rt.family) return null;
    if (p.mask < rt.leafBits) throw new InvalidKeyError(`series "${rt.spec.name}": add takes an address, not the prefix "${key}"`);
    applyMask(p.words, rt.family, rt.leafBits);
    return { field: formatPrefix(rt.family, p.words, rt.leafBits), words: p.words };
  }

  /** Validates a count query; null when it is 0 by construction (other family, empty range). */
  private compile(rt: Runtime, key: string, startv: number, endv: number): Query | null {
    const last = checkRange(rt, startv, endv);
    if (rt.family === undefined) {
      checkStringKey(rt, key);
      return startv > last ? null : { rt, kind: 'l', field: key, mask: 0, words: undefined, startv, last };
    }
    const p = parsePrefix(key);
    if (!p) throw new InvalidKeyError(`series "${rt.spec.name}": "${key}" is not an IP address or CIDR prefix`);
    if (p.family !== rt.family || startv > last) return null;
    if (p.mask >= rt.leafBits) {
      applyMask(p.words, rt.family, rt.leafBits);
      return { rt, kind: 'l', field: formatPrefix(rt.family, p.words, rt.leafBits), mask: rt.leafBits, words: p.words, startv, last };
    }
    return { rt, kind: 'a', field: formatPrefix(rt.family, p.words, p.mask), mask: p.mask, words: p.words, startv, last };
  }
}

function checkRange(rt: Runtime, startv: number, endv: number): number {
  if (!Number.isInteger(startv) || !Number.isInteger(endv) || startv < 0 || endv < startv) {
    throw new WindowRangeError(`series "${rt.spec.name}": window range ${startv}..${endv} is invalid (need integers 0 ≤ start ≤ end)`);
  }
  return Math.min(endv, rt.spec.windows - 1);
}

function checkCount(rt: Runtime, count: number): void {
  if (!Number.isSafeInteger(count) || count > MAX_COUNT || count < MIN_COUNT) {
    throw new WindowRangeError(`series "${rt.spec.name}": count must be an integer from ${MIN_COUNT} to ${MAX_COUNT}`);
  }
}

function checkStringKey(rt: Runtime, key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_STRING_KEY_LENGTH) {
    throw new InvalidKeyError(`series "${rt.spec.name}": a string key must be 1 to ${MAX_STRING_KEY_LENGTH} characters`);
  }
}

/** Sum of the stored keys of one window's leaf hash that match the query. */
function sumMatching(hash: Map<string, number>, q: Query): number {
  if (q.kind === 'l') return hash.get(q.field) ?? 0;
  let sum = 0;
  for (const [f, c] of hash) {
    const p = parsePrefix(f);
    if (p && prefixContains(q.words!, q.mask, p.words, q.rt.leafBits, q.rt.nwords)) sum += c;
  }
  return sum;
}

/** The adds in `wins` that a query covers (windows startv..last back from `cur`). */
function windowsDelta(wins: Windows, q: Query, cur: number): number {
  let sum = 0;
  for (const [w, m] of wins) {
    const v = cur - w;
    if (v < q.startv || v > q.last) continue;
    if (q.kind === 'l') sum += m.get(q.field)?.delta ?? 0;
    else for (const e of m.values()) if (prefixContains(q.words!, q.mask, e.words!, q.rt.leafBits, q.rt.nwords)) sum += e.delta;
  }
  return sum;
}

export interface RedisViewOptions {
  clock: Clock;
  logger?: Logger;
  keyPrefix?: string;
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/**
 * A central view of the cluster: reads every replicated series of `config` (cluster and
 * manager) straight from Redis, e.g. for an admin tool or the CLI pointed at the shared store.
 * Redis unavailable is a StoreError (there is no local data to fall back to).
 */
export async function createRedisView(config: Config, opts: RedisViewOptions): Promise<RedisSeriesStore> {
  if (config.store.redis === undefined) throw new StoreError('store.redis is not set: there is no shared store to view');
  return RedisSeriesStore.connect({
    redis: config.store.redis,
    series: replicatedSeries(config),
    clock: opts.clock,
    central: true,
    onError: 'tempfail',
    maxDelayMs: config.store.max_delay * 1000,
    maxPending: config.store.max_pending,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.keyPrefix !== undefined ? { keyPrefix: opts.keyPrefix } : {}),
    ...(opts.commandTimeoutMs !== undefined ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
  });
}
