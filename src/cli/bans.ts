/**
 * `auditgate bans …`: the ban list of a running gateway, through its admin listener.
 *
 *   list [--limit N] | lift PREFIX | add PREFIX --for DURATION
 *
 * The prefix and the duration are checked here first (a usage error, exit 2), then by the
 * gateway, which refuses a ban over a protected network (exit 1). Options as `auditgate series`.
 */
import { adminRequest, type AdminTarget } from '../admin/client.js';
import type { BanJson as BanRow } from '../admin/answers.js';
import { parseDuration } from '../config/duration.js';
import { normalizeBanPrefix } from '../bans/ban-list.js';
import { ADMIN_OPTIONS_USAGE, type CliIo, type Parsed, UsageError, defaultIo, expectArgs, formatTable, intOption, printer, query, runAdminCommand, verbError } from './admin-args.js';

export const BANS_USAGE = `usage: auditgate bans VERB [options]
  list [--limit N]                          the active bans, soonest expiry first (default 1000)
  lift PREFIX                               lift the ban on exactly PREFIX, on every node
  add PREFIX --for DURATION                 ban PREFIX (an address or CIDR) by hand, e.g. --for 1h
${ADMIN_OPTIONS_USAGE}`;

function prefixArg(text: string): string {
  const p = normalizeBanPrefix(text);
  if (!p) throw new UsageError(`"${text}" is not an IP address or CIDR prefix (e.g. 198.51.100.7, 192.0.2.0/24, 2001:db8::/48)`);
  return p.prefix;
}

function left(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.ceil(seconds / 60)}m`;
  return `${Math.ceil(seconds / 3600)}h`;
}

async function run(p: Parsed, target: AdminTarget, io: CliIo): Promise<void> {
  const print = printer(p, io);
  switch (p.positional[0]) {
    case 'list': {
      expectArgs(p, 0, 'auditgate bans list [--limit N]');
      const a = (await adminRequest(target, 'GET', `/bans${query({ limit: intOption(p, '--limit', { min: 1 }) })}`)) as { total: number; bans: BanRow[] };
      print(a, () => {
        if (a.total === 0) return '(no bans)\n';
        const shown = a.bans.length < a.total ? `# ${a.bans.length} of ${a.total} bans\n` : '';
        return shown + formatTable(['PREFIX', 'LEFT', 'UNTIL', 'POLICY', 'LEVEL', 'NODE'], a.bans.map((b) => [b.prefix, left(b.seconds_left), b.until, b.policy, b.level, b.node ?? '']));
      });
      return;
    }
    case 'lift': {
      const [prefix] = expectArgs(p, 1, 'auditgate bans lift PREFIX');
      const a = (await adminRequest(target, 'DELETE', `/bans${query({ prefix: prefixArg(prefix!) })}`)) as { lifted: BanRow };
      print(a, () => `lifted the ban on ${a.lifted.prefix} (${a.lifted.policy}, ${left(a.lifted.seconds_left)} left)\n`);
      return;
    }
    case 'add': {
      const [prefix] = expectArgs(p, 1, 'auditgate bans add PREFIX --for DURATION');
      const text = p.opts.get('--for');
      if (text === undefined) throw new UsageError('add needs --for DURATION, e.g. --for 1h');
      let seconds: number;
      try {
        seconds = parseDuration(text);
      } catch (e) {
        throw new UsageError(`--for: ${(e as Error).message}`);
      }
      if (!(seconds > 0)) throw new UsageError(`--for must be more than 0, got "${text}"`);
      const a = (await adminRequest(target, 'POST', '/bans', { prefix: prefixArg(prefix!), for: seconds })) as { ban: BanRow };
      print(a, () => `banned ${a.ban.prefix} until ${a.ban.until} (${left(a.ban.seconds_left)})\n`);
      return;
    }
    default:
      throw verbError(p.positional[0]);
  }
}

/** Runs one `auditgate bans …` command; returns the exit code. */
export function bansCommand(args: string[], io: CliIo = defaultIo()): Promise<number> {
  return runAdminCommand('bans', BANS_USAGE, args, io, ['--limit', '--for'], (p, target) => run(p, target, io));
}
