/**
 * What the CLI verbs that talk to a running gateway's admin listener share (`auditgate series …`,
 * `auditgate bans …`): argument parsing, the usage errors, tables, and the one wrapper that
 * resolves the target (--admin, --config, --token) and turns failures into exit codes:
 * 0 ok, 1 the gateway refused or could not be reached, 2 usage error.
 */
import { AuditgateError } from '../errors.js';
import { AdminClientError, resolveTarget, type AdminTarget } from '../admin/client.js';

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export const defaultIo = (): CliIo => ({
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  env: process.env,
});

export class UsageError extends Error {}

/** The usage error for a missing or unknown verb. */
export function verbError(verb: string | undefined): UsageError {
  return new UsageError(verb === undefined ? 'a verb is required' : `unknown verb "${verb}"`);
}

/** Options every admin verb takes; a command adds its own. */
const COMMON_VALUE_OPTIONS = ['--admin', '--config', '--token'];

export interface Parsed {
  positional: string[];
  opts: Map<string, string>;
  flags: Set<string>;
}

/** Splits arguments into positionals, `--name value` / `--name=value` options and `--json`-like flags. */
export function parseArgs(args: readonly string[], valueOptions: readonly string[], flagOptions: readonly string[] = ['--json']): Parsed {
  const valueSet = new Set([...COMMON_VALUE_OPTIONS, ...valueOptions]);
  const flagSet = new Set(flagOptions);
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
      if (flagSet.has(name)) {
        if (eq >= 0) throw new UsageError(`${name} takes no value`);
        flags.add(name);
        continue;
      }
      if (!valueSet.has(name)) throw new UsageError(`unknown option ${name}`);
      const value = eq >= 0 ? a.slice(eq + 1) : args[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      opts.set(name, value);
      continue;
    }
    positional.push(a);
  }
  return { positional, opts, flags };
}

export function intOption(p: Parsed, name: string, opts: { min?: number } = {}): number | undefined {
  const v = p.opts.get(name);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v) || (opts.min !== undefined && Number(v) < opts.min)) {
    throw new UsageError(`${name} "${v}" must be an integer${opts.min !== undefined ? ` >= ${opts.min}` : ''}`);
  }
  return Number(v);
}

export function windowsOption(p: Parsed): string | undefined {
  const v = p.opts.get('--windows');
  if (v !== undefined && !/^\d+(-\d+)?$/.test(v)) throw new UsageError(`--windows "${v}" must be a range such as 0-3 (or one window: 0)`);
  return v;
}

/** The positionals after the verb, exactly `n` of them. */
export function expectArgs(p: Parsed, n: number, shape: string): string[] {
  const rest = p.positional.slice(1);
  if (rest.length !== n) throw new UsageError(`expected: ${shape}`);
  return rest;
}

export const seg = (s: string): string => encodeURIComponent(s);

export function query(params: Record<string, string | number | undefined>): string {
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

/**
 * Runs one admin verb command: help, argument parsing, target resolution, then `run`; failures
 * become the message and exit code (see the file header). `name` is the command ("series").
 */
export async function runAdminCommand(
  name: string,
  usage: string,
  args: string[],
  io: CliIo,
  valueOptions: readonly string[],
  run: (p: Parsed, target: AdminTarget) => Promise<void>,
): Promise<number> {
  if (args.length === 0 || args[0] === '-h' || args[0] === '--help' || args[0] === 'help') {
    (args.length === 0 ? io.err : io.out)(usage);
    return args.length === 0 ? 2 : 0;
  }
  try {
    const p = parseArgs(args, valueOptions);
    const topts: { admin?: string; config?: string; token?: string; env: NodeJS.ProcessEnv } = { env: io.env };
    const admin = p.opts.get('--admin');
    const config = p.opts.get('--config');
    const token = p.opts.get('--token');
    if (admin !== undefined) topts.admin = admin;
    if (config !== undefined) topts.config = config;
    if (token !== undefined) topts.token = token;
    await run(p, resolveTarget(topts));
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`auditgate ${name}: ${err.message}\n${usage}`);
      return 2;
    }
    if (err instanceof AdminClientError) {
      if (err.code === 'usage') {
        io.err(`auditgate ${name}: ${err.message}\n`);
        return 2;
      }
      io.err(`auditgate ${name}: ${err.message}${err.code ? ` (${err.code}${err.status ? `, HTTP ${err.status}` : ''})` : ''}\n`);
      return 1;
    }
    if (err instanceof AuditgateError) {
      io.err(`auditgate ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

/** Prints the raw JSON answer with --json, else the readable text. */
export function printer(p: Parsed, io: CliIo): (answer: unknown, readable: () => string) => void {
  const json = p.flags.has('--json');
  return (answer, readable) => io.out(json ? `${JSON.stringify(answer, null, 2)}\n` : readable());
}

/** The options every admin verb takes, as the usage texts print them. */
export const ADMIN_OPTIONS_USAGE = `options:
  --admin URL      admin listener (default: --config's admin.listen, else http://127.0.0.1:8025)
  --config FILE    read admin.listen and admin.token from this config
  --token T        bearer token (default: $AUDITGATE_TOKEN, else --config's admin.token)
  --json           print the raw JSON answer
`;
