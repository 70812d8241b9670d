/**
 * Durations and sizes as operators write them in the YAML config.
 *
 *   parseDuration(30) === 30, parseDuration('5m') === 300, parseDuration('500ms') === 0.5,
 *   parseDuration('1h30m') === 5400
 *   parseSize('25MB') === 25 * 1024 * 1024, parseSize(1000) === 1000
 *
 * Both throw a RangeError whose message says what was wrong and what is accepted; the zod
 * schema turns that message into a config problem with file, line and key.
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
};

const DURATION_HELP = 'use seconds or a number with a unit: 500ms, 30s, 5m, 1h, 1d, 1w (combinations such as 1h30m work)';

/** One `<number><unit>` part; the whole text must be a sequence of these. */
const DURATION_PART = /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d|w)/y;
const PLAIN_NUMBER = /^(?:\d+(?:\.\d+)?|\.\d+)$/;

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** Parses a duration into seconds (possibly fractional). Throws RangeError for garbage or negatives. */
export function parseDuration(v: number | string): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`invalid duration ${show(v)}: ${DURATION_HELP}`);
    return v;
  }
  if (typeof v !== 'string') throw new RangeError(`invalid duration ${show(v)}: ${DURATION_HELP}`);
  const text = v.trim();
  if (PLAIN_NUMBER.test(text)) return Number(text);
  if (text === '') throw new RangeError(`invalid duration "": ${DURATION_HELP}`);
  let total = 0;
  let pos = 0;
  const seen = new Set<string>();
  while (pos < text.length) {
    DURATION_PART.lastIndex = pos;
    const m = DURATION_PART.exec(text);
    if (!m) throw new RangeError(`invalid duration ${show(v)}: ${DURATION_HELP}`);
    const unit = m[2]!;
    if (seen.has(unit)) throw new RangeError(`invalid duration ${show(v)}: unit "${unit}" appears twice`);
    seen.add(unit);
    total += Number(m[1]) * DURATION_UNITS[unit]!;
    pos = DURATION_PART.lastIndex;
  }
  // Round away binary noise such as 0.1s*3 without losing millisecond precision.
  return Math.round(total * 1e6) / 1e6;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

const SIZE_HELP = 'use bytes or a number with a unit: 512B, 10KB, 25MB, 1GB (units are powers of 1024)';
const SIZE_RE = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/i;

/** Parses a size into whole bytes (binary units, rounded down). Throws RangeError for garbage. */
export function parseSize(v: number | string): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`invalid size ${show(v)}: ${SIZE_HELP}`);
    return v;
  }
  if (typeof v !== 'string') throw new RangeError(`invalid size ${show(v)}: ${SIZE_HELP}`);
  const m = SIZE_RE.exec(v.trim());
  const factor = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || factor === undefined) throw new RangeError(`invalid size ${show(v)}: ${SIZE_HELP}`);
  const bytes = Math.floor(Number(m[1]) * factor);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`invalid size ${show(v)}: too large`);
  return bytes;
}

/** Seconds as the shortest exact text with a unit, e.g. 900 → "15m", 0.5 → "500ms", 5400 → "90m". */
export function formatDuration(seconds: number): string {
  if (seconds === 0) return '0s';
  const ms = Math.round(seconds * 1000);
  if (ms % 1000 !== 0) return `${ms}ms`;
  for (const [unit, size] of [['w', 604_800], ['d', 86_400], ['h', 3600], ['m', 60]] as const) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** Bytes as the shortest exact text, e.g. 26214400 → "25MB", 1000 → "1000B". */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]] as const) {
    if (bytes > 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
