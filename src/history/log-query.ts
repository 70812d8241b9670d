/**
 * Querying serialized history (the logs SeriesLogWriter appends), Momentum `cidr_cli` style:
 * "the ten /24s with the most rejections yesterday". The `auditgate history` command is
 * src/cli/history.ts. Distinct series' windows are united, not added: a row counts the distinct
 * values over its windows and the keys it groups ("the /24s that sent to the most distinct
 * recipients yesterday").
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { type ParsedPrefix, FAMILY_BITS, applyMask, formatPrefix, parsePrefix, prefixContains } from '../series/address.js';
import { DAY_MS, dayFileStart, parseLogLine, seriesLogDir } from './format.js';
import { DistinctSketch } from '../series/distinct.js';

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
  /** Distinct series: called with the distinct values over every row (not the sum of the rows). */
  onDistinctTotal?: (count: number) => void;
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
  /** Distinct series: each row's values over its windows and keys (the count is their number). */
  const unions = new Map<string, DistinctSketch>();
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
    const dir = seriesLogDir(opts.logDir, series);
    let files: string[];
    try {
      files = await fsp.readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    for (const f of files.sort()) {
      const dayStart = dayFileStart(f);
      // a day file holds the windows that start on that day
      if (dayStart === undefined || !(dayStart < toMs && dayStart + DAY_MS > fromMs)) continue;
      const file = path.join(dir, f);
      const rl = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
      let lineNo = 0;
      for await (const text of rl) {
        lineNo++;
        if (text.trim() === '') continue;
        const line = parseLogLine(text);
        if (!line) {
          opts.onProblem?.(`${file}:${lineNo}: malformed line skipped`);
          continue;
        }
        if (line.series !== series) continue;
        const start = Date.parse(line.start);
        if (!(start >= fromMs && start < toMs)) continue;
        if (line.sets) {
          for (const [key, set] of Object.entries(line.sets)) {
            const k = mapKey(line.type, key);
            if (k === null) continue;
            let u = unions.get(k);
            if (!u) unions.set(k, (u = new DistinctSketch()));
            try {
              u.merge(DistinctSketch.fromJSON(set));
            } catch {
              opts.onProblem?.(`${file}:${lineNo}: the set of "${key}" is not a distinct set; skipped`);
            }
          }
          continue;
        }
        for (const [key, c] of Object.entries(line.counts)) {
          if (typeof c !== 'number' || !Number.isFinite(c) || c === 0) continue;
          const k = mapKey(line.type, key);
          if (k === null) continue;
          totals.set(k, (totals.get(k) ?? 0) + c);
        }
      }
    }
  }

  if (unions.size > 0 && totals.size > 0) {
    throw new Error('the series chosen mix distinct series (distinct values) and counting series (sums): query them separately');
  }
  const rows: HistoryRow[] = [];
  for (const [key, count] of totals) if (count !== 0) rows.push({ key, count });
  for (const [key, u] of unions) if (u.count() !== 0) rows.push({ key, count: u.count() });
  if (unions.size > 0 && opts.onDistinctTotal) opts.onDistinctTotal(DistinctSketch.unionCount([...unions.values()]));
  if ((opts.order ?? 'count') === 'key') rows.sort((a, b) => compareKeys(a.key, b.key));
  else rows.sort((a, b) => b.count - a.count || compareKeys(a.key, b.key));
  return opts.limit ? rows.slice(0, opts.limit) : rows;
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
