/**
 * Shapes of admin API answers that more than one reader needs (the CLI, the web console):
 * declared once here, produced by the handlers, read by both. Types only.
 */
import type { SeriesType } from '../series/types.js';

/** One series in `GET /series`. */
export interface SeriesRow {
  name: string;
  type: SeriesType;
  /** Counts distinct values per key and window (distinct: true). */
  distinct: boolean;
  /** Seconds per window. */
  interval: number;
  windows: number;
  keys: number;
  memory_bytes: number;
  replicate: string;
  monitor: boolean;
}

/** A ban as `GET /bans`, `POST /bans`, `DELETE /bans` and `show ip` give it. */
export interface BanJson {
  prefix: string;
  policy: string;
  since: string;
  until: string;
  seconds_left: number;
  level: number;
  node?: string;
}
