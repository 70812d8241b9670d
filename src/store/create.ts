/**
 * Builds the store the gateway uses: series with replicate: none live in the memory store;
 * series with replicate: cluster | manager go through the Redis store (see redis-store.ts).
 * The result routes each call by series name; countMany/addMany split and merge in order.
 * createRedisView: a central view that reads every replicated series straight from Redis (admin tools).
 */
import type { Logger } from 'pino';
import { replicatedSeries } from '../config/catalogue.js';
import type { Config } from '../config/types.js';
import { StoreError } from '../errors.js';
import type { Clock } from '../series/clock.js';
import type { SeriesRegistry } from '../series/registry.js';
import type { TopEntry, TopOptions } from '../series/types.js';
import { MemoryStore } from './memory-store.js';
import type { RedisStoreOptions } from './redis-options.js';
import { RedisSeriesStore } from './redis-store.js';
import type { AddOp, CountQuery, ManagedStore, SeriesStore, StoreStatus } from './types.js';
import { partitioned } from './partition.js';

export interface StoreContext {
  config: Config;
  registry: SeriesRegistry;
  clock: Clock;
  logger: Logger;
  /** Redis store settings the config does not carry (key prefix, timeouts, buffer bound). */
  redis?: RedisTuning;
}

export type RedisTuning = Partial<
  Pick<RedisStoreOptions, 'keyPrefix' | 'commandTimeoutMs' | 'connectTimeoutMs' | 'probeIntervalMs' | 'maxBuffered' | 'nodeId' | 'nearMargin' | 'maxUnshipped'>
>;

export class ManagedMemoryStore extends MemoryStore implements ManagedStore {
  private readonly since: number;
  constructor(registry: SeriesRegistry, clock: Clock) {
    super(registry);
    this.since = clock.now();
  }
  status(): StoreStatus {
    return { kind: this.kind, state: 'ok', since: this.since, errors: 0, pending: 0 };
  }
}

/** Memory for replicate: none, Redis for replicate: cluster | manager. */
export class RoutingStore implements ManagedStore {
  readonly kind = 'memory+redis';
  constructor(
    readonly memory: ManagedMemoryStore,
    readonly redis: RedisSeriesStore,
  ) {}

  private pick(series: string): SeriesStore {
    return this.redis.serves(series) ? this.redis : this.memory;
  }

  /** Follows a config reload: the replicated series, their masks and shapes. */
  reconfigure(config: Config): void {
    this.redis.configure(replicatedSeries(config));
  }

  add(series: string, key: string, count = 1): Promise<void> {
    return this.pick(series).add(series, key, count);
  }

  async addMany(ops: readonly AddOp[]): Promise<void> {
    const mem: AddOp[] = [];
    const red: AddOp[] = [];
    for (const op of ops) (this.pick(op.series) === this.redis ? red : mem).push(op);
    // Memory first: it cannot fail for Redis reasons, so a StoreError never hides local counting.
    if (mem.length) await this.memory.addMany(mem);
    if (red.length) await this.redis.addMany(red);
  }

  count(series: string, key: string, startv = 0, endv = startv): Promise<number> {
    return this.pick(series).count(series, key, startv, endv);
  }

  countMany(queries: readonly CountQuery[]): Promise<number[]> {
    return partitioned(
      queries,
      (q) => this.pick(q.series) === this.redis,
      (qs) => this.memory.countMany(qs),
      (qs) => this.redis.countMany(qs),
    );
  }

  removeItem(series: string, key: string): Promise<number> {
    return this.pick(series).removeItem(series, key);
  }

  top(series: string, opts?: TopOptions): Promise<TopEntry[]> {
    return this.pick(series).top(series, opts);
  }

  /** Ships the buffered Redis adds now (tests, shutdown). */
  flush(): Promise<void> {
    return this.redis.flush();
  }

  status(): StoreStatus {
    return { ...this.redis.status(), kind: `memory+${this.redis.status().kind}` };
  }

  async close(): Promise<void> {
    await this.redis.close();
    await this.memory.close();
  }
}

export async function createStore(ctx: StoreContext): Promise<ManagedStore> {
  const memory = new ManagedMemoryStore(ctx.registry, ctx.clock);
  const series = replicatedSeries(ctx.config);
  const { store } = ctx.config;
  if (series.length === 0) return memory;
  if (store.redis === undefined) {
    // The config loader refuses this; a hand-built config still gets a working gateway.
    ctx.logger.warn({ series: series.map((s) => s.name) }, 'replicated series without store.redis: counting in process only');
    return memory;
  }
  const redis = await RedisSeriesStore.connect({
    ...ctx.redis,
    redis: store.redis,
    series,
    clock: ctx.clock,
    logger: ctx.logger,
    registry: ctx.registry,
    onError: store.on_error,
    maxDelayMs: store.max_delay * 1000,
    maxPending: store.max_pending,
  });
  return new RoutingStore(memory, redis);
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
