/**
 * The store seam. Decisions ask for counts through this interface and await them, so the
 * in-process store (memory, the default) and the shared one (Redis, for replicate: cluster)
 * are interchangeable. Every store passes the contract suite in test/unit/store/memory-store.test.ts.
 */
import type { TopEntry, TopOptions } from '../series/types.js';
import type { ClientAddress } from '../series/address.js';
import type { StoreOnError } from '../config/vocabulary.js';

export interface CountQuery {
  series: string;
  /** `ip`, `ip/mask` or a string key. */
  key: string;
  startv: number;
  endv: number;
  /**
   * The same key already parsed (a client's address and the mask of `key`): a store that keeps
   * series in process may count from it without parsing `key` again. It must say what `key` says.
   */
  address?: ClientAddress;
  mask?: number;
  /**
   * The threshold of the enforcing policy that asks (it fires above it). A shared store makes
   * sure a count near it includes this node's adds (redis-store.ts: cluster limits that hold).
   */
  above?: number;
}

export interface AddOp {
  series: string;
  key: string;
  /** Added to the key's current window (ignored by a distinct series, which adds `value`). */
  count: number;
  /** Distinct series: the value added to the key's set (required there, refused elsewhere). */
  value?: string;
  /** `key` as a parsed client address (see CountQuery.address). */
  address?: ClientAddress;
}

export interface SeriesStore {
  readonly kind: string;
  add(series: string, key: string, count?: number): Promise<void>;
  /** Several adds at once (one round trip for a remote store). */
  addMany(ops: readonly AddOp[]): Promise<void>;
  count(series: string, key: string, startv?: number, endv?: number): Promise<number>;
  /** Several counts at once (one round trip for a remote store); results in query order. */
  countMany(queries: readonly CountQuery[]): Promise<number[]>;
  removeItem(series: string, key: string): Promise<number>;
  top(series: string, opts?: TopOptions): Promise<TopEntry[]>;
  close(): Promise<void>;
}

/**
 * A store whose counts live in this process answers at once as well: the engine then records and
 * decides without awaiting anything (src/maybe.ts). Same results and errors as addMany and
 * countMany, thrown instead of rejected.
 */
export interface ImmediateStore {
  addManyNow(ops: readonly AddOp[]): void;
  countManyNow(queries: readonly CountQuery[]): number[];
}

export function immediateStore(s: SeriesStore): ImmediateStore | undefined {
  const i = s as Partial<ImmediateStore>;
  return typeof i.addManyNow === 'function' && typeof i.countManyNow === 'function' ? (s as SeriesStore & ImmediateStore) : undefined;
}

export interface StoreStatus {
  kind: string;
  /** ok: every series is served by its store; fallback: Redis is unreachable, counting locally. */
  state: 'ok' | 'fallback';
  /** Epoch ms when the current state began. */
  since: number;
  errors: number;
  /** Adds waiting to be shipped to Redis. */
  pending: number;
  /** Adds counted locally only because the merge buffer was full (this outage). */
  dropped?: number;
  /**
   * Adds Redis did not store because the window's leaf hash of that series already held
   * max_keys keys (new keys only; prefix aggregates counted them), since start.
   */
  capped?: number;
  /** The last Redis failure, e.g. "count: Command timed out". */
  lastError?: string;
  onError?: StoreOnError;
}

export interface ManagedStore extends SeriesStore {
  status(): StoreStatus;
}
