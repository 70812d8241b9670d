import type { Family } from './address.js';
import type { DistinctJSON } from './distinct.js';

export type SeriesType = 'cidr' | 'cidr_ipv6' | 'string';

/** The address family a series of `type` counts; undefined for string keys. */
export function familyOf(type: SeriesType | undefined): Family | undefined {
  return type === 'cidr' ? 4 : type === 'cidr_ipv6' ? 6 : undefined;
}

export type Replicate = 'none' | 'cluster' | 'manager';

export const SERIES_TYPES: readonly SeriesType[] = ['cidr', 'cidr_ipv6', 'string'];

export interface SeriesOptions {
  persist?: boolean;
  serialize?: boolean;
  replicate?: Replicate;
  /** cidr_ipv6 only: addresses are truncated to this prefix length when stored. */
  store_prefix?: number;
  /**
   * Upper bound on tracked keys. Past it a key seen only once (probation) is evicted, least
   * recently touched first; keys seen again (protected) only when no such key is left.
   */
  max_keys?: number;
  /**
   * Prefix lengths kept as running aggregates so counts at those masks are O(1).
   * Counts at other masks stay exact, only slower. Defaults: cidr [8,16,24], cidr_ipv6 [32,48,56,64].
   */
  levels?: number[];
  /**
   * Counts distinct values per key and window (adds carry a value) instead of summing counts:
   * exact up to 64 values, then Redis's HyperLogLog (distinct.ts).
   */
  distinct?: boolean;
  /**
   * Window counts as 64-bit-safe doubles (exact to 2^53) instead of 32-bit integers, for series
   * that sum large amounts (message bytes).
   */
  wide?: boolean;
}

export interface SeriesDefinition {
  name: string;
  type: SeriesType;
  /** Seconds per window. */
  interval: number;
  /** Number of windows; window 0 is the current one. */
  windows: number;
  options?: SeriesOptions;
}

export interface TopOptions {
  /** Prefix length to group by (cidr types); ignored for string series. Default: full address. */
  mask?: number;
  startv?: number;
  endv?: number;
  /** Default 10. */
  limit?: number;
}

export interface TopEntry {
  key: string;
  count: number;
}

/**
 * One key of a snapshot: its text and counts[v] (the count in window v); a distinct series adds
 * sets[v], the key's values in window v (null when none), and its counts are the sets' sizes.
 */
export type SnapshotEntry = [key: string, counts: number[]] | [key: string, counts: number[], sets: Array<DistinctJSON | null>];

/** Plain-data snapshot of one series: what persistence writes and the cluster merge reads. */
export interface SeriesSnapshot {
  /** 1: counts; 2: a distinct series (entries carry their sets). */
  version: 1 | 2;
  name: string;
  type: SeriesType;
  interval: number;
  windows: number;
  store_prefix?: number;
  /** Absolute window number (floor(epoch seconds / interval)) that window 0 was at. */
  window: number;
  /**
   * Leaf keys: the probation segment least recently touched first, then the protected one
   * likewise; counts[v] is the count in window v.
   */
  entries: SnapshotEntry[];
}

export const DEFAULT_MAX_KEYS = 1_000_000;

/** Prefix lengths a cidr series keeps as aggregates unless its definition says otherwise. */
export const DEFAULT_LEVELS: Readonly<Record<Family, readonly number[]>> = { 4: [8, 16, 24], 6: [32, 48, 56, 64] };
