/**
 * The store seam. Decisions ask for counts through this interface and await them, so the
 * in-process store (memory, the default) and the shared one (Redis, for replicate: cluster)
 * are interchangeable. Every store passes the contract suite in test/unit/store-contract.test.ts.
 */
import type { TopEntry, TopOptions } from '../series/types.js';
import type { ClientAddress } from '../series/address.js';

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
}

export interface AddOp {
  series: string;
  key: string;
  count: number;
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
