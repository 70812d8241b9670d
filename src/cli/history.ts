/**
 * `auditgate history …`: sums serialized window logs (history/log-query.ts) for the terminal.
 *
 *   auditgate history --log-dir DIR --series rejections:300,6[,other] --from 2026-11-20 --to 2026-11-21
 *                     [--prefix 0.0.0.0/0] [--group 24] [--limit 10] [--order count|key] [--json]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { DAY_MS, seriesLogDir } from '../history/format.js';
import { type HistoryQuery, type HistoryRow, queryHistory } from '../history/log-query.js';
import { parsePrefix } from '../series/address.js';
import { isUsageProblem, parseDate, UsageProblem } from './args.js';

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
    if (isUsageProblem(e)) {
      err(`auditgate history: ${(e as Error).message}`);
      for (const l of USAGE) err(l);
      return 2;
    }
    throw e;
  }
  let skipped = 0;
  let rows: HistoryRow[];
  let distinctTotal: number | undefined;
  try {
    rows = await queryHistory({ ...q, limit: undefined, onProblem: () => skipped++, onDistinctTotal: (n) => (distinctTotal = n) });
  } catch (e) {
    err(`auditgate history: cannot read the series logs under ${q.logDir}: ${(e as Error).message}`);
    return 1;
  }
  // distinct series: the distinct values over all rows (a value seen under two keys counts once)
  const total = distinctTotal ?? rows.reduce((s, r) => s + r.count, 0);
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
      if (name !== '' && fs.existsSync(seriesLogDir(logDir, name))) {
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
