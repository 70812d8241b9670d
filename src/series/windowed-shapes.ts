/**
 * The shapes around WindowedSeries (windowed.ts): a closed window, a snapshot being copied, and
 * the checks of a definition and of a snapshot before a series takes them.
 */
import { SeriesDefinitionError, SnapshotError } from '../errors.js';
import type { DistinctJSON } from './distinct.js';
import { DEFAULT_MAX_KEYS, type SeriesDefinition, type SeriesOptions, type SeriesSnapshot, type SnapshotEntry } from './types.js';

export interface ClosedWindow {
  series: string;
  /** Absolute window number: floor(epoch seconds / interval). */
  window: number;
  startMs: number;
  endMs: number;
  /** Every key with a non-zero count in that window: probation keys, then protected ones, each most recently touched first. */
  entries: Array<[string, number]>;
  /** Distinct series: each key's set of values in that window (entries[i]'s is sets[i]); the counts are their sizes. */
  sets?: DistinctJSON[];
}
export type WindowCloseListener = (closed: ClosedWindow) => void;
/** The max_keys of a valid definition; throws SeriesDefinitionError for a bad interval, window count or max_keys. */
export function checkDefinition(def: SeriesDefinition): number {
  if (!Number.isFinite(def.interval) || def.interval <= 0) {
    throw new SeriesDefinitionError(`series "${def.name}": interval must be a positive number of seconds`);
  }
  if (!Number.isInteger(def.windows) || def.windows < 1 || def.windows > 1024) {
    throw new SeriesDefinitionError(`series "${def.name}": windows must be an integer from 1 to 1024`);
  }
  const maxKeys = def.options?.max_keys ?? DEFAULT_MAX_KEYS;
  if (!Number.isInteger(maxKeys) || maxKeys < 1) {
    throw new SeriesDefinitionError(`series "${def.name}": max_keys must be a positive integer`);
  }
  return maxKeys;
}

/** The fields of a snapshot other than its entries. */
export type SnapshotHead = Omit<SeriesSnapshot, 'entries'>;

/** A snapshot being copied a slice at a time (see WindowedSeries.openSnapshot). */
export interface SnapshotCursor {
  /** Everything but the entries; `window` is window 0 when the cursor opened. */
  readonly head: SnapshotHead;
  /** Copies up to `max` more entries (keys whose counts are all 0 are skipped); [] when done. */
  next(max: number): SnapshotEntry[];
  /** Releases the series (held ids, compaction). Idempotent. */
  close(): void;
}

/** Checks a snapshot fits the series: its version (1 counts, 2 distinct sets), type and interval. */
export function checkSnapshot(series: { name: string; type: string; interval: number; options: Readonly<SeriesOptions> }, snap: SeriesSnapshot): void {
  const version = series.options.distinct ? 2 : 1;
  if (!snap || !Array.isArray(snap.entries) || !Number.isInteger(snap.window)) {
    throw new SnapshotError(`series "${series.name}": snapshot has an unknown shape`);
  }
  if (snap.version !== version) {
    throw new SnapshotError(
      `series "${series.name}": snapshot version ${String(snap.version)} holds ${snap.version === 2 ? 'distinct sets' : 'counts'}, the series ${version === 2 ? 'counts distinct values (version 2)' : 'counts events (version 1)'}`,
    );
  }
  if (snap.type !== series.type || snap.interval !== series.interval) {
    throw new SnapshotError(
      `series "${series.name}": snapshot is ${snap.type}/${snap.interval}s, series is ${series.type}/${series.interval}s`,
    );
  }
}
