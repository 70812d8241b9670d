/** What the CLI's commands share in reading their arguments. */

/** A bad argument: the command prints the message and its usage, and exits 2. */
export class UsageProblem extends Error {}

/** True for an argument problem (ours, or node:util parseArgs's). */
export function isUsageProblem(e: unknown): boolean {
  return e instanceof UsageProblem || ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ?? false);
}

/** YYYY-MM-DD (UTC midnight) or an ISO timestamp (UTC when it names no zone). */
export function parseDate(text: string, flag: string): Date {
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
