/**
 * `auditgate series …`: the admin console verbs against a running gateway's admin listener.
 *
 *   list | count SERIES KEY [--windows A-B] | top SERIES [--mask N] [--limit N] [--windows A-B]
 *   add SERIES KEY [--count N | --value V] | delete SERIES KEY | show IP | sessions [--mask N] [--family 4|6]
 *   decisions [--limit N]
 *
 * Options: --admin URL, --config FILE, --token T (or $AUDITGATE_TOKEN), --json.
 * Exit codes: 0 ok, 1 the gateway refused or could not be reached, 2 usage error.
 */
import { AuditgateError } from '../errors.js';
import { AdminClientError, adminRequest, resolveTarget, type AdminTarget } from '../admin/client.js';

export const SERIES_USAGE = `usage: auditgate series VERB [options]
  list                                      every series: type, interval, windows, keys, memory
  count SERIES KEY [--windows A-B]          count an address or CIDR over windows (count_cidr)
  top SERIES [--mask N] [--limit N] [--windows A-B]
                                            top talkers, grouped by prefix length
  add SERIES KEY [--count N]                add N (default 1, negative subtracts) to window 0
  add SERIES KEY --value V                  a distinct series: add the value V to the key's set in window 0
  delete SERIES KEY                         remove an address, prefix or string key (delete_ip)
  show IP                                   every series and monitor for one client, per window
  sessions [--mask N] [--family 4|6] [--limit N]
                                            open sessions per prefix
  decisions [--limit N]                     recent policy firings
options:
  --admin URL      admin listener (default: --config's admin.listen, else http://127.0.0.1:8025)
  --config FILE    read admin.listen and admin.token from this config
  --token T        bearer token (default: $AUDITGATE_TOKEN, else --config's admin.token)
  --json           print the raw JSON answer
`;

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

const defaultIo = (): CliIo => ({
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  env: process.env,
});

class UsageError extends Error {}

const VALUE_OPTIONS = new Set(['--admin', '--config', '--token', '--windows', '--mask', '--limit', '--count', '--value', '--family']);
const FLAG_OPTIONS = new Set(['--json']);

interface Parsed {
  positional: string[];
  opts: Map<string, string>;
  flags: Set<string>;
}

function parseArgs(args: readonly string[]): Parsed {
  const positional: string[] = [];
  const opts = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    // "-5" as a count (subtract) is a value, not an option.
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a : a.slice(0, eq);
      if (FLAG_OPTIONS.has(name)) {
        if (eq >= 0) throw new UsageError(`${name} takes no value`);
        flags.add(name);
        continue;
      }
      if (!VALUE_OPTIONS.has(name)) throw new UsageError(`unknown option ${name}`);
      const value = eq >= 0 ? a.slice(eq + 1) : args[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      opts.set(name, value);
      continue;
    }
    positional.push(a);
  }
  return { positional, opts, flags };
}

function intOption(p: Parsed, name: string, opts: { min?: number } = {}): number | undefined {
  const v = p.opts.get(name);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v) || (opts.min !== undefined && Number(v) < opts.min)) {
    throw new UsageError(`${name} "${v}" must be an integer${opts.min !== undefined ? ` >= ${opts.min}` : ''}`);
  }
  return Number(v);
}

function windowsOption(p: Parsed): string | undefined {
  const v = p.opts.get('--windows');
  if (v !== undefined && !/^\d+(-\d+)?$/.test(v)) throw new UsageError(`--windows "${v}" must be a range such as 0-3 (or one window: 0)`);
  return v;
}

function expectArgs(p: Parsed, n: number, shape: string): string[] {
  const rest = p.positional.slice(1);
  if (rest.length !== n) throw new UsageError(`expected: auditgate series ${shape}`);
  return rest;
}

const seg = (s: string): string => encodeURIComponent(s);

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Aligned columns; numeric columns right-aligned. */
export function formatTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...cells.map(line)].join('\n')}\n`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

interface SeriesRow {
  name: string;
  type: string;
  interval: number;
  windows: number;
  keys: number;
  memory_bytes: number;
  replicate: string;
  monitor: boolean;
}

interface TopAnswer {
  series: string;
  mask: number | null;
  windows: [number, number];
  top: Array<{ key: string; count: number }>;
}

interface ShowAnswer {
  ip: string;
  key: string;
  sessions: number;
  series: Array<{ name: string; type: string; interval: number; monitor: boolean; distinct?: boolean; total: number; windows: number[] }>;
}

interface SessionsAnswer {
  total: number;
  open: number;
  family: number;
  mask: number;
  top: Array<{ key: string; count: number }>;
}

interface DecisionsAnswer {
  decisions: Array<{ at: number; client: string; stage: string; policy: string; action: string; mode: string; key?: string; count?: number; above?: number }>;
}

async function run(p: Parsed, target: AdminTarget, io: CliIo): Promise<void> {
  const verb = p.positional[0];
  const json = p.flags.has('--json');
  const print = (answer: unknown, readable: () => string): void => io.out(json ? `${JSON.stringify(answer, null, 2)}\n` : readable());
  switch (verb) {
    case 'list': {
      expectArgs(p, 0, 'list');
      const a = (await adminRequest(target, 'GET', '/series')) as { series: SeriesRow[] };
      print(a, () =>
        formatTable(
          ['SERIES', 'TYPE', 'INTERVAL', 'WINDOWS', 'KEYS', 'MEMORY', 'REPLICATE'],
          a.series.map((s) => [s.name, s.monitor ? `${s.type} (monitor)` : s.type, `${s.interval}s`, s.windows, s.keys, bytes(s.memory_bytes), s.replicate]),
        ),
      );
      return;
    }
    case 'count': {
      const [series, key] = expectArgs(p, 2, 'count SERIES KEY [--windows A-B]');
      const a = (await adminRequest(target, 'GET', `/series/${seg(series!)}/count${query({ key, windows: windowsOption(p) })}`)) as {
        series: string;
        key: string;
        windows: [number, number];
        count: number;
      };
      print(a, () => formatTable(['SERIES', 'KEY', 'WINDOWS', 'COUNT'], [[a.series, a.key, `${a.windows[0]}-${a.windows[1]}`, a.count]]));
      return;
    }
    case 'top': {
      const [series] = expectArgs(p, 1, 'top SERIES [--mask N] [--limit N] [--windows A-B]');
      const a = (await adminRequest(
        target,
        'GET',
        `/series/${seg(series!)}/top${query({ mask: intOption(p, '--mask', { min: 0 }), limit: intOption(p, '--limit', { min: 1 }), windows: windowsOption(p) })}`,
      )) as TopAnswer;
      print(a, () => {
        const head = `# ${a.series}, windows ${a.windows[0]}-${a.windows[1]}${a.mask !== null ? `, /${a.mask}` : ''}\n`;
        return head + (a.top.length ? formatTable(['KEY', 'COUNT'], a.top.map((t) => [t.key, t.count])) : '(no keys)\n');
      });
      return;
    }
    case 'add': {
      const [series, key] = expectArgs(p, 2, 'add SERIES KEY [--count N | --value V]');
      const value = p.opts.get('--value');
      if (value !== undefined) {
        if (p.opts.has('--count')) throw new UsageError('--count and --value exclude each other (--value is for distinct series)');
        const a = (await adminRequest(target, 'POST', `/series/${seg(series!)}/add`, { key, value })) as { series: string; key: string; value: string; count: number };
        print(a, () => `added ${JSON.stringify(a.value)} to ${a.key} in ${a.series}; window 0 now holds ${a.count} distinct value${a.count === 1 ? '' : 's'}\n`);
        return;
      }
      const count = intOption(p, '--count') ?? 1;
      const a = (await adminRequest(target, 'POST', `/series/${seg(series!)}/add`, { key, count })) as { series: string; key: string; added: number; count: number };
      print(a, () => `${a.added < 0 ? 'subtracted' : 'added'} ${Math.abs(a.added)} ${a.added < 0 ? 'from' : 'to'} ${a.key} in ${a.series}; window 0 is now ${a.count}\n`);
      return;
    }
    case 'delete': {
      const [series, key] = expectArgs(p, 2, 'delete SERIES KEY');
      const a = (await adminRequest(target, 'DELETE', `/series/${seg(series!)}/items${query({ key })}`)) as { series: string; key: string; removed: number };
      print(a, () => `removed ${a.removed} key${a.removed === 1 ? '' : 's'} matching ${a.key} from ${a.series}\n`);
      return;
    }
    case 'show': {
      const [ip] = expectArgs(p, 1, 'show IP');
      const a = (await adminRequest(target, 'GET', `/show/ip/${seg(ip!)}`)) as ShowAnswer;
      print(a, () => {
        const head = `# ${a.ip}: ${a.sessions} open session${a.sessions === 1 ? '' : 's'}\n`;
        if (!a.series.length) return `${head}(no series for this address family)\n`;
        return (
          head +
          formatTable(
            ['SERIES', 'INTERVAL', 'TOTAL', 'WINDOWS 0..N'],
            a.series.map((s) => [`${s.name}${s.monitor ? ' (monitor)' : s.distinct ? ' (distinct)' : ''}`, `${s.interval}s`, s.total, s.windows.join(' ')]),
          )
        );
      });
      return;
    }
    case 'sessions': {
      expectArgs(p, 0, 'sessions [--mask N] [--family 4|6] [--limit N]');
      const family = p.opts.get('--family');
      if (family !== undefined && family !== '4' && family !== '6') throw new UsageError(`--family "${family}" must be 4 or 6`);
      const a = (await adminRequest(
        target,
        'GET',
        `/sessions${query({ mask: intOption(p, '--mask', { min: 0 }), family, limit: intOption(p, '--limit', { min: 1 }) })}`,
      )) as SessionsAnswer;
      print(a, () => {
        const head = `# ${a.open} open session${a.open === 1 ? '' : 's'} (${a.total} by address), IPv${a.family} /${a.mask}\n`;
        return head + (a.top.length ? formatTable(['PREFIX', 'SESSIONS'], a.top.map((t) => [t.key, t.count])) : '(none)\n');
      });
      return;
    }
    case 'decisions': {
      expectArgs(p, 0, 'decisions [--limit N]');
      const a = (await adminRequest(target, 'GET', `/decisions${query({ limit: intOption(p, '--limit', { min: 1 }) })}`)) as DecisionsAnswer;
      print(a, () =>
        a.decisions.length
          ? formatTable(
              ['TIME', 'CLIENT', 'STAGE', 'POLICY', 'ACTION', 'MODE', 'KEY', 'COUNT'],
              a.decisions.map((d) => [new Date(d.at).toISOString(), d.client, d.stage, d.policy, d.action, d.mode, d.key ?? '', d.count === undefined ? '' : `${d.count}/${d.above ?? ''}`]),
            )
          : '(no policy fired yet)\n',
      );
      return;
    }
    case undefined:
      throw new UsageError('a verb is required');
    default:
      throw new UsageError(`unknown verb "${verb}"`);
  }
}

/** Runs one `auditgate series …` command; returns the exit code. */
export async function seriesCommand(args: string[], io: CliIo = defaultIo()): Promise<number> {
  if (args.length === 0 || args[0] === '-h' || args[0] === '--help' || args[0] === 'help') {
    (args.length === 0 ? io.err : io.out)(SERIES_USAGE);
    return args.length === 0 ? 2 : 0;
  }
  try {
    const p = parseArgs(args);
    const topts: { admin?: string; config?: string; token?: string; env: NodeJS.ProcessEnv } = { env: io.env };
    const admin = p.opts.get('--admin');
    const config = p.opts.get('--config');
    const token = p.opts.get('--token');
    if (admin !== undefined) topts.admin = admin;
    if (config !== undefined) topts.config = config;
    if (token !== undefined) topts.token = token;
    const target = resolveTarget(topts);
    await run(p, target, io);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`auditgate series: ${err.message}\n${SERIES_USAGE}`);
      return 2;
    }
    if (err instanceof AdminClientError) {
      if (err.code === 'usage') {
        io.err(`auditgate series: ${err.message}\n`);
        return 2;
      }
      io.err(`auditgate series: ${err.message}${err.code ? ` (${err.code}${err.status ? `, HTTP ${err.status}` : ''})` : ''}\n`);
      return 1;
    }
    if (err instanceof AuditgateError) {
      io.err(`auditgate series: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
