/** What the Redis store (redis-store.ts over redis-link.ts) is built with. */
import type { Logger } from 'pino';
import type { StoreOnError } from '../config/vocabulary.js';
import type { Clock } from '../series/clock.js';
import type { SeriesRegistry } from '../series/registry.js';
import type { HoldingOptions } from './redis-holding.js';
import type { ReplicatedSeries } from './redis-layout.js';

export interface RedisStoreOptions extends HoldingOptions {
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
