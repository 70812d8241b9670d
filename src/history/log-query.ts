/**
 * Querying serialized history (the logs SeriesLogWriter appends), Momentum `cidr_cli` style:
 * "the ten /24s with the most rejections yesterday".
 *
 *   auditgate history --log-dir DIR --series rejections:300,6[,other] --from 2026-11-20 --to 2026-11-21
 *                     [--prefix 0.0.0.0/0] [--group 24] [--limit 10] [--order count|key] [--json]
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { type ParsedPrefix, FAMILY_BITS, applyMask, formatPrefix, parsePrefix, prefixContains } from '../series/address.js';
import { DAY_FILE_RE } from './log-writer.js';
import { safeFileName } from './persister.js';

const DAY_MS = 86_400_000;

export interface HistoryQuery {
  logDir: string;
  /** Series names; counts of the same key in several series are summed. */
  series: string[];
  /** Windows whose start lies in [from, to) are summed. */
  from: Date;
  to: Date;
  /** cidr series: keep keys inside this prefix (`192.0.2.0/24`, `2001:db8::/32`); string series: this exact key. */
  prefix?: string;
  /** cidr series: group keys by this prefix length (clamped to the family's width). String keys are not grouped. */
  groupBy?: number;
  /** Rows returned; undefined or 0 for all. */
  limit?: number;
  /** count: heaviest first (ties by key); key: addresses in numeric order, then strings. Default count. */
  order?: 'count' | 'key';
  /** Called for each malformed line skipped (e.g. a line torn by a crash). */
  onProblem?: (message: string) => void;
}

export interface HistoryRow {
  key: string;
  count: number;
}

/** Sums the logged windows of the chosen series, filtered, grouped, ordered and limited. */
export async function queryHistory(opts: HistoryQuery): Promise<HistoryRow[]> {
  const fromMs = opts.from.getTime();
  const toMs = opts.to.getTime();
  const totals = new Map<string, number>();
  if (!(fromMs < toMs)) return [];
  const filterPrefix = opts.prefix !== undefined ? parsePrefix(opts.prefix) : null;
  const keyCache = new Map<string, string | null>();

  const mapKey = (type: string, key: string): string | null => {
    const cacheKey = type === 'string' ? `s${key}` : `c${key}`;
    const hit = keyCache.get(cacheKey);
    if (hit !== undefined) return hit;
    const out = type === 'string' ? mapStringKey(key, opts.prefix) : mapCidrKey(key, opts.prefix, filterPrefix, opts.groupBy);
    keyCache.set(cacheKey, out);
    return out;
  };

  for (const series of opts.series) {
    const dir = path.join(opts.logDir, safeFileName(series));
    let files: string[];
    try {
      files = await fsp.readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    for (const f of files.sort()) {
      const m = DAY_FILE_RE.exec(f);
      if (!m) continue;
      const dayStart = Date.parse(`${m[1]}T00:00:00Z`);
      // a day file holds the windows that start on that day
      if (!(dayStart < toMs && dayStart + DAY_MS > fromMs)) continue;
      const file = path.join(dir, f);
      const rl = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
      let lineNo = 0;
      for await (const text of rl) {
        lineNo++;
        if (text.trim() === '') continue;
        const line = parseLine(text);
        if (!line) {
          opts.onProblem?.(`${file}:${lineNo}: malformed line skipped`);
          continue;
        }
        if (line.series !== series) continue;
        const start = Date.parse(line.start);
        if (!(start >= fromMs && start < toMs)) continue;
        for (const [key, c] of Object.entries(line.counts)) {
          if (typeof c !== 'number' || !Number.isFinite(c) || c === 0) continue;
          const k = mapKey(line.type, key);
          if (k === null) continue;
          totals.set(k, (totals.get(k) ?? 0) + c);
        }
      }
    }
  }

  const rows: HistoryRow[] = [];
  for (const [key, count] of totals) if (count !== 0) rows.push({ key, count });
  if ((opts.order ?? 'count') === 'key') rows.sort((a, b) => compareKeys(a.key, b.key));
  else rows.sort((a, b) => b.count - a.count || compareKeys(a.key, b.key));
  return opts.limit ? rows.slice(0, opts.limit) : rows;
}

function parseLine(text: string): { series: string; type: string; start: string; counts: Record<string, unknown> } | null {
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
  return { series: o.series, type: o.type, start: o.start, counts: o.counts as Record<string, unknown> };
}

function mapStringKey(key: string, prefix: string | undefined): string | null {
  return prefix === undefined || key === prefix ? key : null;
}

function mapCidrKey(key: string, prefix: string | undefined, filter: ParsedPrefix | null, groupBy: number | undefined): string | null {
  const p = parsePrefix(key);
  if (!p) return null;
  if (prefix !== undefined) {
    if (!filter || filter.family !== p.family) return null;
    if (!prefixContains(filter.words, filter.mask, p.words, p.mask, p.family === 4 ? 1 : 4)) return null;
  }
  if (groupBy === undefined) return formatPrefix(p.family, p.words, p.mask);
  const mask = Math.min(groupBy, p.mask, FAMILY_BITS[p.family]);
  applyMask(p.words, p.family, mask);
  return formatPrefix(p.family, p.words, mask);
}

/** IPv4 before IPv6 before strings; addresses in numeric order, then by prefix length. */
function compareKeys(a: string, b: string): number {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  if (pa && pb) {
    if (pa.family !== pb.family) return pa.family - pb.family;
    const n = pa.family === 4 ? 1 : 4;
    for (let i = 0; i < n; i++) {
      const d = pa.words[i]! - pb.words[i]!;
      if (d !== 0) return d;
    }
    return pa.mask - pb.mask;
  }
  if (pa) return -1;
  if (pb) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- the command ------------------------------------------------------------------------

export interface HistoryCommandOptions {
  /** Where error messages go (default: `out`). */
  err?: (line: string) => void;
  /** Epoch ms for `--yesterday` and the default `--to` (default: Date.now). */
  now?: () => number;
}

const USAGE = [
  'usage: auditgate history --log-dir DIR --series NAME[,NAME…] (--from DATE [--to DATE] | --yesterday)',
  '                         [--prefix CIDR|KEY] [--group BITS] [--limit N] [--order count|key] [--json]',
  '  DATE is YYYY-MM-DD (UTC midnight) or an ISO timestamp; windows starting in [from, to) are summed.',
  '  --to defaults to now; --limit 0 prints every row (default 10).',
];

class UsageProblem extends Error {}

/**
 * `auditgate history …`: `argv` is the arguments after `history` (a leading "history" is
 * skipped). Prints a table, or one JSON object with --json. Returns the exit code: 0, 2 for bad
 * arguments, 1 when the logs cannot be read.
 */
export async function historyCommand(
  argv: string[],
  out: (line: string) => void,
  options: HistoryCommandOptions = {},
): Promise<number> {
  const err = options.err ?? out;
  const now = options.now ?? Date.now;
  const args = argv[0] === 'history' ? argv.slice(1) : argv;
  let q: HistoryQuery & { limit: number; groupBy?: number };
  let json: boolean;
  try {
    const parsed = parseHistoryArgs(args, now());
    q = parsed.query;
    json = parsed.json;
  } catch (e) {
    if (e instanceof UsageProblem || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      err(`auditgate history: ${(e as Error).message}`);
      for (const l of USAGE) err(l);
      return 2;
    }
    throw e;
  }
  let skipped = 0;
  let rows: HistoryRow[];
  try {
    rows = await queryHistory({ ...q, limit: undefined, onProblem: () => skipped++ });
  } catch (e) {
    err(`auditgate history: cannot read the series logs under ${q.logDir}: ${(e as Error).message}`);
    return 1;
  }
  const total = rows.reduce((s, r) => s + r.count, 0);
  const shown = q.limit > 0 ? rows.slice(0, q.limit) : rows;
  if (skipped > 0) err(`auditgate history: skipped ${skipped} malformed line(s)`);
  if (json) {
    out(
      JSON.stringify({
        series: q.series,
        from: q.from.toISOString(),
        to: q.to.toISOString(),
        prefix: q.prefix ?? null,
        group: q.groupBy ?? null,
        order: q.order ?? 'count',
        keys: rows.length,
        total,
        rows: shown,
      }),
    );
    return 0;
  }
  const desc = [
    `series ${q.series.join(' + ')}`,
    `from ${q.from.toISOString()} to ${q.to.toISOString()}`,
    q.prefix !== undefined ? `prefix ${q.prefix}` : undefined,
    q.groupBy !== undefined ? `grouped by /${q.groupBy}` : undefined,
  ].filter((s) => s !== undefined);
  out(desc.join(', '));
  if (rows.length === 0) {
    out('no counts in that range');
    return 0;
  }
  const keyW = Math.max(3, ...shown.map((r) => r.key.length));
  const countW = Math.max(5, ...shown.map((r) => String(r.count).length), String(total).length);
  out(`${'key'.padEnd(keyW)}  ${'count'.padStart(countW)}`);
  for (const r of shown) out(`${r.key.padEnd(keyW)}  ${String(r.count).padStart(countW)}`);
  out(`${rows.length} key(s), total ${total}${shown.length < rows.length ? `; the first ${shown.length} shown` : ''}`);
  return 0;
}

function parseHistoryArgs(args: string[], nowMs: number): { query: HistoryQuery & { limit: number }; json: boolean } {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      'log-dir': { type: 'string' },
      series: { type: 'string', multiple: true },
      from: { type: 'string' },
      to: { type: 'string' },
      yesterday: { type: 'boolean' },
      prefix: { type: 'string' },
      group: { type: 'string' },
      limit: { type: 'string' },
      order: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const logDir = values['log-dir'];
  if (!logDir) throw new UsageProblem('--log-dir is required');
  if (!values.series || values.series.length === 0) throw new UsageProblem('--series is required');
  const series: string[] = [];
  for (const s of values.series) series.push(...splitSeriesList(s, logDir));
  for (const s of series) {
    if (!/^[A-Za-z0-9_.:,-]{1,128}$/.test(s)) throw new UsageProblem(`"${s}" is not a series name`);
  }

  let from: Date;
  let to: Date;
  if (values.yesterday) {
    if (values.from !== undefined || values.to !== undefined) throw new UsageProblem('--yesterday cannot be combined with --from/--to');
    const today = Math.floor(nowMs / DAY_MS) * DAY_MS;
    from = new Date(today - DAY_MS);
    to = new Date(today);
  } else {
    if (values.from === undefined) throw new UsageProblem('--from (or --yesterday) is required');
    from = parseDate(values.from, '--from');
    to = values.to !== undefined ? parseDate(values.to, '--to') : new Date(nowMs);
    if (!(from.getTime() < to.getTime())) {
      throw new UsageProblem(`--from ${from.toISOString()} must be before --to ${to.toISOString()}`);
    }
  }

  const prefix = values.prefix;
  if (prefix !== undefined) {
    if (prefix === '') throw new UsageProblem('--prefix must not be empty');
    // something shaped like an address or CIDR must parse as one; anything else is a string key
    if (/^[0-9a-fA-F:.[\]]+(\/\d*)?$/.test(prefix) && /[.:]/.test(prefix) && !parsePrefix(prefix)) {
      throw new UsageProblem(`--prefix "${prefix}" is not a valid address or CIDR prefix`);
    }
  }
  let groupBy: number | undefined;
  if (values.group !== undefined) {
    const g = values.group.replace(/^\//, '');
    if (!/^\d{1,3}$/.test(g) || Number(g) > 128) throw new UsageProblem(`--group "${values.group}" must be a prefix length from 0 to 128`);
    groupBy = Number(g);
  }
  let limit = 10;
  if (values.limit !== undefined) {
    if (!/^\d{1,9}$/.test(values.limit)) throw new UsageProblem(`--limit "${values.limit}" must be a whole number (0 for all)`);
    limit = Number(values.limit);
  }
  const order = values.order ?? 'count';
  if (order !== 'count' && order !== 'key') throw new UsageProblem(`--order must be "count" or "key", got "${order}"`);

  const query: HistoryQuery & { limit: number } = { logDir, series, from, to, limit, order };
  if (prefix !== undefined) query.prefix = prefix;
  if (groupBy !== undefined) query.groupBy = groupBy;
  return { query, json: values.json === true };
}

/**
 * Splits `--series a,b` where names may themselves hold commas (`rejections:300,6`): the longest
 * run of comma-separated parts that names a series directory under the log dir wins; otherwise
 * a part that is only digits belongs to a preceding `name:N` (the monitor suffix).
 */
export function splitSeriesList(text: string, logDir: string): string[] {
  const parts = text.split(',').map((p) => p.trim());
  const out: string[] = [];
  let i = 0;
  while (i < parts.length) {
    let taken = 0;
    for (let j = parts.length; j > i; j--) {
      const name = parts.slice(i, j).join(',');
      if (name !== '' && fs.existsSync(path.join(logDir, safeFileName(name)))) {
        out.push(name);
        taken = j - i;
        break;
      }
    }
    if (taken === 0) {
      let name = parts[i]!;
      taken = 1;
      // "interval,windows": one digits-only part after "name:N"
      if (/:\d+$/.test(name) && i + 1 < parts.length && /^\d+$/.test(parts[i + 1]!)) {
        name += `,${parts[i + 1]!}`;
        taken = 2;
      }
      if (name === '') throw new UsageProblem(`empty series name in --series "${text}"`);
      out.push(name);
    }
    i += taken;
  }
  return out;
}

/** YYYY-MM-DD (UTC midnight) or an ISO timestamp (UTC when it names no zone). */
function parseDate(text: string, flag: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.exec(text);
  if (!m) throw new UsageProblem(`${flag} "${text}" is not a date (YYYY-MM-DD or an ISO timestamp)`);
  const [, y, mo, d, h, mi, s, ms, zone] = m;
  const iso = `${y}-${mo}-${d}T${h ?? '00'}:${mi ?? '00'}:${s ?? '00'}.${(ms ?? '0').padEnd(3, '0')}${normalizeZone(zone)}`;
  const t = Date.parse(iso);
  // Date.parse rolls 2026-02-30 over to March: check the fields themselves
  if (!Number.isFinite(t) || Number(mo) < 1 || Number(mo) > 12 || Number(d) < 1 || Number(d) > daysIn(Number(y), Number(mo))) {
    throw new UsageProblem(`${flag} "${text}" is not a valid date`);
  }
  if (Number(h ?? 0) > 23 || Number(mi ?? 0) > 59 || Number(s ?? 0) > 59) throw new UsageProblem(`${flag} "${text}" is not a valid time`);
  return new Date(t);
}

function normalizeZone(zone: string | undefined): string {
  if (zone === undefined || zone === 'Z') return 'Z';
  return zone.includes(':') ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
}

function daysIn(y: number, m: number): number {
  return new Date(Date.UTC(y, m, 0)).getUTCDate();
}
