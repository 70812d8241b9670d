/**
 * What the history keeps on disk, named and shaped once: series names as file names, and the
 * series log (`serialize: true`), written by log-writer.ts and read by log-query.ts.
 *
 * Layout: `<log_dir>/<safe series name>/<YYYY-MM-DD>.jsonl`, one file per series per UTC day
 * (the day of the window's start). One line per closed window with at least one non-zero count:
 *
 *   {"series":"rejections:300,6","type":"cidr","window":5983506,"start":"2026-11-20T10:30:00.000Z",
 *    "end":"2026-11-20T10:35:00.000Z","interval":300,"counts":{"192.0.2.1":3,"198.51.100.7":1}}
 *
 * A distinct series' line says `"distinct":true` and carries each key's set of values in the
 * window (DistinctSketch JSON: exact hashes or Redis's HLL string) beside its count, so history
 * can unite windows and prefixes instead of adding counts:
 *
 *   {…,"distinct":true,"counts":{"192.0.2.1":2},"sets":{"192.0.2.1":{"v":1,"exact":"C+1SymXf…"}}}
 */
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { ClosedWindow } from '../series/windowed.js';
import type { DistinctJSON } from '../series/distinct.js';

export const DAY_MS = 86_400_000;
/** Keys stringified between two yields to the event loop. */
const CHUNK_KEYS = 10_000;
const DAY_FILE_RE = /^(\d{4}-\d{2}-\d{2})\.jsonl$/;

/**
 * A series name as a file or directory name: names may hold `:` and `,` (monitor series such as
 * `connections:300,6`); they are percent-encoded, and a leading dot too (no hidden files, no `..`).
 */
export function safeFileName(name: string): string {
  return encodeURIComponent(name).replace(/^\./, '%2E');
}

/** The inverse of safeFileName. */
export function unsafeFileName(file: string): string {
  return decodeURIComponent(file);
}

/** UTC day (YYYY-MM-DD) of a time in ms. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The directory of a series' day files. */
export function seriesLogDir(logDir: string, series: string): string {
  return path.join(logDir, safeFileName(series));
}

/** The day file a window starting at `startMs` goes to. */
export function dayFile(logDir: string, series: string, startMs: number): string {
  return path.join(seriesLogDir(logDir, series), `${utcDay(startMs)}.jsonl`);
}

/** Epoch ms of the UTC midnight a day file's name stands for; undefined for any other name. */
export function dayFileStart(fileName: string): number | undefined {
  const m = DAY_FILE_RE.exec(fileName);
  if (!m) return undefined;
  const dayStart = Date.parse(`${m[1]}T00:00:00Z`);
  return Number.isFinite(dayStart) ? dayStart : undefined;
}

/** One line of a series log. */
export interface WindowLogLine {
  series: string;
  type: string;
  /** Absolute window number: floor(epoch seconds / interval). */
  window: number;
  /** ISO time the window started / ended. */
  start: string;
  end: string;
  /** Seconds. */
  interval: number;
  /** A distinct series: counts are distinct values, and `sets` holds each key's values. */
  distinct?: true;
  counts: Record<string, number>;
  sets?: Record<string, DistinctJSON>;
}

/** Builds one JSONL line for a closed window, yielding to the event loop between chunks of keys. */
export async function formatLogLine(closed: ClosedWindow, type: string, interval: number): Promise<string> {
  const head: Omit<WindowLogLine, 'counts'> = {
    series: closed.series,
    type,
    window: closed.window,
    start: new Date(closed.startMs).toISOString(),
    end: new Date(closed.endMs).toISOString(),
    interval,
  };
  if (closed.sets) head.distinct = true;
  let s = `${JSON.stringify(head).slice(0, -1)},"counts":{`;
  const entries = closed.entries;
  for (let i = 0; i < entries.length; i++) {
    const [k, c] = entries[i]!;
    s += `${i === 0 ? '' : ','}${JSON.stringify(k)}:${c}`;
    if ((i + 1) % CHUNK_KEYS === 0) await yieldToLoop();
  }
  s += '}';
  if (closed.sets) {
    s += ',"sets":{';
    for (let i = 0; i < entries.length; i++) {
      s += `${i === 0 ? '' : ','}${JSON.stringify(entries[i]![0])}:${JSON.stringify(closed.sets[i])}`;
      if ((i + 1) % CHUNK_KEYS === 0) await yieldToLoop();
    }
    s += '}';
  }
  return `${s}}\n`;
}

/** The fields of a log line a query needs (sets: a distinct series'); null for a line that is not one (e.g. torn by a crash). */
export function parseLogLine(
  text: string,
): { series: string; type: string; start: string; counts: Record<string, unknown>; sets?: Record<string, unknown> } | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.series !== 'string' || typeof o.type !== 'string' || typeof o.start !== 'string') return null;
  if (typeof o.counts !== 'object' || o.counts === null || Array.isArray(o.counts)) return null;
  const line = { series: o.series, type: o.type, start: o.start, counts: o.counts as Record<string, unknown> };
  if (o.distinct !== true) return line;
  if (typeof o.sets !== 'object' || o.sets === null || Array.isArray(o.sets)) return null;
  return { ...line, sets: o.sets as Record<string, unknown> };
}
