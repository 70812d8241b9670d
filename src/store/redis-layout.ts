/**
 * How replicated series are laid out in Redis (pure: no I/O).
 *
 * Keys, for series S with interval I seconds and absolute window number W
 * (W = floor(epoch ms / (I × 1000)), the same on every node):
 *
 *   <prefix>{S}:<I>s:<W>:l        hash  leaf → count   (cidr: address or stored prefix; string: the key)
 *   <prefix>{S}:<I>s:<W>:a        hash  prefix → count for the aggregate masks (cidr types only),
 *                                       e.g. "192.0.2.0/24", "0.0.0.0/0"; plus markers:
 *                                       "#m" the mask set the writers kept ("0,24"),
 *                                       "#x" set when writers disagreed (counts then scan the leaves),
 *                                       "#o" adds dropped because the leaf hash was full (any type)
 *   <prefix>{S}:<I>s:seq:<node>   string  last batch sequence applied from one node (retries are
 *                                         applied once)
 *
 * Distinct series (distinct: true) keep the leaf hash as an index (leaf → values added) and the
 * "#m"/"#x"/"#o" markers in the aggregate hash, and the values themselves per leaf and per kept
 * prefix (field: the leaf's or the prefix's text, as above):
 *
 *   <prefix>{S}:<I>s:<W>:s:<field>  set   the values while there are at most 64
 *   <prefix>{S}:<I>s:<W>:h:<field>  HLL   PFADD of the values, once there are more (the set goes)
 *   <prefix>{S}:<I>s:tmp            HLL   scratch of a union, inside one script
 *
 * A window's leaf hash holds at most `max_keys` fields (the series' max_keys): past it, adds for
 * new fields are dropped (counted in "#o"); existing fields and the aggregates keep counting.
 *
 * The hash tag {S} puts every key of one series in one Redis Cluster slot, so a Lua script may
 * touch all of them. Every key expires `ttlSeconds` after its last write: the series coverage
 * (interval × windows) plus a margin.
 */
import { FAMILY_BITS } from '../series/address.js';
import { familyOf, type SeriesType } from '../series/types.js';

export type ReplicateMode = 'cluster' | 'manager';

/** A series whose adds go to Redis. */
export interface ReplicatedSeries {
  name: string;
  type: SeriesType;
  /** Seconds per window. */
  interval: number;
  windows: number;
  store_prefix?: number;
  replicate: ReplicateMode;
  /** Fields a window's leaf hash may hold (the series' max_keys; new keys past it are not stored). */
  max_keys: number;
  /**
   * Aggregate masks kept per window (cidr types), ascending, each below the stored key length;
   * always includes 0. Empty for string series.
   */
  masks: number[];
  /** Counts distinct values (PFADD / PFCOUNT; see redis-distinct.ts) instead of summing adds. */
  distinct?: boolean;
}

export const DEFAULT_KEY_PREFIX = 'ag:';

/** Bits kept per stored cidr key: 32, 128, or store_prefix. */
export function leafBitsOf(s: Pick<ReplicatedSeries, 'type' | 'store_prefix'>): number {
  const f = familyOf(s.type);
  if (f === undefined) return 0;
  return s.store_prefix ?? FAMILY_BITS[f];
}

/** Seconds a window key lives after its last write: coverage plus max(60 s, one interval). */
export function ttlSeconds(s: Pick<ReplicatedSeries, 'interval' | 'windows'>): number {
  return Math.ceil(s.interval * s.windows + Math.max(60, s.interval));
}

export class KeyLayout {
  constructor(readonly prefix: string = DEFAULT_KEY_PREFIX) {
    if (/[{}]/.test(prefix)) throw new Error('a Redis key prefix must not contain { or }');
  }

  /** `<prefix>{S}:<I>s` — the interval is part of the name so nodes with a different shape never mix. */
  base(s: Pick<ReplicatedSeries, 'name' | 'interval'>): string {
    return `${this.prefix}{${s.name}}:${s.interval}s`;
  }

  leaf(s: Pick<ReplicatedSeries, 'name' | 'interval'>, window: number): string {
    return `${this.base(s)}:${window}:l`;
  }

  agg(s: Pick<ReplicatedSeries, 'name' | 'interval'>, window: number): string {
    return `${this.base(s)}:${window}:a`;
  }

  seq(s: Pick<ReplicatedSeries, 'name' | 'interval'>, node: string): string {
    return `${this.base(s)}:seq:${node}`;
  }

  /** A distinct series: the values of a leaf or kept prefix in a window, a SET while it holds at most 64. */
  values(s: Pick<ReplicatedSeries, 'name' | 'interval'>, window: number, field: string): string {
    return `${this.base(s)}:${window}:s:${field}`;
  }

  /** A distinct series: the HyperLogLog of a leaf or kept prefix in a window, once it passed 64 values. */
  hll(s: Pick<ReplicatedSeries, 'name' | 'interval'>, window: number, field: string): string {
    return `${this.base(s)}:${window}:h:${field}`;
  }

  /** A distinct series: scratch space for a union (created and deleted inside one script). */
  tmp(s: Pick<ReplicatedSeries, 'name' | 'interval'>): string {
    return `${this.base(s)}:tmp`;
  }
}
