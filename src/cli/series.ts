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
import { adminRequest, type AdminTarget } from '../admin/client.js';
import type { SeriesRow } from '../admin/answers.js';
import { ADMIN_OPTIONS_USAGE, type CliIo, type Parsed, UsageError, defaultIo, expectArgs, formatTable, intOption, printer, query, runAdminCommand, seg, verbError, windowsOption } from './admin-args.js';

export type { CliIo } from './admin-args.js';

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
${ADMIN_OPTIONS_USAGE}`;

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
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
  const print = printer(p, io);
  switch (verb) {
    case 'list': {
      expectArgs(p, 0, 'auditgate series list');
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
      const [series, key] = expectArgs(p, 2, 'auditgate series count SERIES KEY [--windows A-B]');
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
      const [series] = expectArgs(p, 1, 'auditgate series top SERIES [--mask N] [--limit N] [--windows A-B]');
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
      const [series, key] = expectArgs(p, 2, 'auditgate series add SERIES KEY [--count N | --value V]');
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
      const [series, key] = expectArgs(p, 2, 'auditgate series delete SERIES KEY');
      const a = (await adminRequest(target, 'DELETE', `/series/${seg(series!)}/items${query({ key })}`)) as { series: string; key: string; removed: number };
      print(a, () => `removed ${a.removed} key${a.removed === 1 ? '' : 's'} matching ${a.key} from ${a.series}\n`);
      return;
    }
    case 'show': {
      const [ip] = expectArgs(p, 1, 'auditgate series show IP');
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
      expectArgs(p, 0, 'auditgate series sessions [--mask N] [--family 4|6] [--limit N]');
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
      expectArgs(p, 0, 'auditgate series decisions [--limit N]');
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
    default:
      throw verbError(verb);
  }
}

/** Runs one `auditgate series …` command; returns the exit code. */
export function seriesCommand(args: string[], io: CliIo = defaultIo()): Promise<number> {
  return runAdminCommand('series', SERIES_USAGE, args, io, ['--windows', '--mask', '--limit', '--count', '--value', '--family'], (p, target) => run(p, target, io));
}
