/**
 * Replay end to end: traffic through the real gateway (PROXY headers for tens of IPv4 and IPv6
 * clients, a real backend refusing some recipients, a manual clock moved between sessions across
 * window boundaries and a UTC midnight) writes the journal; `auditgate replay` of that journal
 * with the config that recorded it reproduces every decision, and a candidate with a lower
 * threshold refuses exactly the sessions the gateway refuses when it runs that candidate. The
 * config has masks, shadow policies, amounts (count: bytes, count: rcpts) and a distinct series.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startGateway } from '../../src/gateway.js';
import { ManualClock } from '../../src/series/clock.js';
import type { JournalLine } from '../../src/journal/line.js';
import { journalLines, replayJson } from '../helpers/replay.js';
import { proxyV1, SmtpTestClient, startBackend, type Backend } from '../helpers/smtp.js';

/** 23:54 UTC: the run crosses midnight, so the journal has two day files. */
const T0 = Date.UTC(2030, 0, 1, 23, 54, 0);
const SESSIONS = 300;
const STEP_MS = 2_500; // 300 sessions over 12.5 minutes: many 1-minute windows

function configText(dir: string, backend: number, perIp: number): string {
  return `server:
  hostname: replay.test
  listen: ["127.0.0.1:0"]
  proxy_protocol: [127.0.0.0/8]
  idle_timeout: 30s
relay: { url: "smtp://127.0.0.1:${backend}", timeout: 5s }
admin: { enabled: false }
state_dir: ${join(dir, 'state')}
log_dir: ${join(dir, 'log')}
journal: { dir: ${join(dir, 'journal')}, retention: 30d }
series:
  conn: { type: cidr, interval: 1m, windows: 3 }
  conn6: { type: cidr_ipv6, interval: 1m, windows: 3, store_prefix: 64 }
  invalid: { type: cidr, interval: 1m, windows: 5 }
  invalid6: { type: cidr_ipv6, interval: 1m, windows: 5, store_prefix: 64 }
  domains: { type: string, interval: 1m, windows: 2 }
  bytes: { type: cidr, interval: 1m, windows: 3 }
  rcpts: { type: cidr, interval: 1m, windows: 3 }
  rcpt_spread: { type: string, interval: 1m, windows: 3, distinct: true }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: rcpt_rejected, series: [invalid, invalid6] }
  - { on: mail, series: domains, key: "{mail_from_domain}" }
  - { on: data, series: bytes, count: bytes }
  - { on: data, series: rcpts, count: rcpts }
  - { on: rcpt, series: rcpt_spread, key: "{mail_from_domain}", value: "{rcpt}" }
policies:
  - { name: trusted, on: connect, client: [203.0.113.0/28], action: accept }
  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 2], above: ${perIp}, action: tempfail }
  - { name: per-64, on: connect, series: conn6, mask: 64, windows: [0, 2], above: ${perIp}, action: tempfail }
  - { name: dha, on: rcpt, series: invalid, mask: 32, windows: [0, 4], above: 3, action: reject }
  - { name: dha6, on: rcpt, series: invalid6, mask: 64, windows: [0, 4], above: 3, action: reject }
  - { name: bytes-per-ip, on: data, series: bytes, mask: 32, windows: [0, 2], above: 100, action: tempfail }
  - { name: rcpts-per-24, on: data, series: rcpts, mask: 24, windows: [0, 2], above: 12, action: reject, mode: shadow }
  - { name: rcpt-spread, on: rcpt, series: rcpt_spread, key: "{mail_from_domain}", windows: [0, 2], above: 2, action: reject, mode: shadow }
  - { name: domain-watch, on: mail, series: domains, key: "{mail_from_domain}", windows: [0, 1], above: 10, action: tempfail, mode: shadow }
`;
}

/** Tens of clients: 24 IPv4 addresses in 3 /24s, 12 IPv6 in 3 /64s, 2 trusted. */
const CLIENTS = [
  ...Array.from({ length: 24 }, (_, i) => `198.51.${100 + (i % 3)}.${10 + i}`),
  ...Array.from({ length: 12 }, (_, i) => `2001:db8:${i % 3}::${(i + 1).toString(16)}`),
  '203.0.113.1',
  '203.0.113.2',
];

/** A deterministic pseudo-random choice per session. */
function pick(i: number, n: number): number {
  return (((i * 2654435761) >>> 0) % 9973) % n;
}

/** One client session; commands go on whatever the replies, until the gateway hangs up. */
async function session(port: number, i: number): Promise<void> {
  // a third of the sessions come from three busy IPv4 clients
  const client = i % 3 === 0 ? CLIENTS[pick(i, 3) * 3]! : CLIENTS[pick(i, CLIENTS.length)]!;
  const c = await SmtpTestClient.connect(port, { preface: proxyV1(client) });
  try {
    if (c.greeting.code !== 220) return;
    await c.cmd(`EHLO h${i % 7}.example`);
    await c.cmd(`MAIL FROM:<s${i}@d${i % 4}.example>`);
    const rcpts = i % 5 === 0 ? ['unknown1@example.net', 'unknown2@example.net', 'ok@example.net'] : ['ok@example.net'];
    for (const r of rcpts) {
      if ((await c.cmd(`RCPT TO:<${r}>`)).code === 0) return;
    }
    await c.data('Subject: replay\r\n\r\nhello\r\n');
    await c.cmd('QUIT');
  } finally {
    c.close();
  }
}

/**
 * Runs the traffic through a gateway with `perIp`; returns the journal directory. `together`
 * sessions at a time run side by side at the same virtual millisecond, their commands interleaved.
 */
async function record(backend: Backend, perIp: number, together = 1): Promise<{ dir: string; configFile: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ag-replay-'));
  const configFile = join(dir, 'auditgate.yaml');
  writeFileSync(configFile, configText(dir, backend.port, perIp));
  const clock = new ManualClock(T0);
  const gateway = await startGateway({ config: loadConfig(configFile), clock, logger: pino({ level: 'silent' }) });
  try {
    const port = gateway.smtpAddresses()[0]!.port;
    for (let i = 0; i < SESSIONS; i += together) {
      clock.set(T0 + i * STEP_MS);
      await Promise.all(Array.from({ length: Math.min(together, SESSIONS - i) }, (_, k) => session(port, i + k)));
      // the gateway ends the session on its side before the next one starts
      for (let k = 0; k < 500 && gateway.sessions.total() > 0; k++) await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    await gateway.close(1000);
  }
  return { dir: join(dir, 'journal'), configFile };
}

/** Per session, in the order they opened: whether the gateway refused it at least once (a tempfail or reject the client was answered). */
function refusals(lines: JournalLine[]): boolean[] {
  const index = new Map<string, number>();
  const out: boolean[] = [];
  for (const l of lines) {
    if (l.e === 'open') {
      index.set(l.c, out.length);
      out.push(false);
    } else if (l.e !== 'reject' && !l.l && (l.o === 'tempfail' || l.o === 'reject')) out[index.get(l.c)!] = true;
  }
  return out;
}

describe('auditgate replay of a journal the real gateway wrote', () => {
  let backend: Backend;
  let base: { dir: string; configFile: string };
  let lower: { dir: string; configFile: string };
  let together: { dir: string; configFile: string };

  beforeAll(async () => {
    backend = await startBackend();
    base = await record(backend, 6);
    lower = await record(backend, 3);
    together = await record(backend, 6, 10);
  }, 360_000);
  afterAll(async () => {
    await backend?.close();
  });

  it('wrote every session to day files on both sides of midnight, with refusals of each kind', () => {
    expect(readdirSync(base.dir).sort()).toEqual(['2030-01-01.jsonl', '2030-01-02.jsonl']);
    const lines = journalLines(base.dir);
    expect(new Set(lines.filter((l) => l.e === 'open').map((l) => l.c)).size).toBe(SESSIONS);
    const fired = new Set(lines.filter((l) => l.o !== undefined).map((l) => `${l.y}:${l.o}`));
    expect(fired).toContain('per-ip:tempfail');
    expect(fired).toContain('per-64:tempfail');
    expect(fired).toContain('dha:reject');
    expect(fired).toContain('trusted:accept');
    expect(fired).toContain('bytes-per-ip:tempfail'); // count: bytes, from the sizes of delivered messages
    expect(lines.some((l) => l.e === 'delivered' && l.b! > 0)).toBe(true);
    expect(lines.some((l) => l.w?.includes('rcpts-per-24'))).toBe(true); // count: rcpts
    expect(lines.some((l) => l.w?.includes('rcpt-spread'))).toBe(true); // a distinct series
    expect(lines.some((l) => l.w?.includes('domain-watch'))).toBe(true);
    expect(lines.some((l) => l.a?.includes(':'))).toBe(true);
  });

  it('the config that recorded the journal reproduces every recorded decision', async () => {
    const { code, result } = await replayJson(['--config', base.configFile, base.dir]);
    expect(code).toBe(0);
    expect(result.sessions).toBe(SESSIONS);
    expect(result.read.skipped).toBe(0);
    expect(result.decisions.compared).toBeGreaterThan(SESSIONS * 3);
    expect(result.decisions).toMatchObject({ changed: 0, otherPolicy: 0, unreachedAfter: 0, unreachedBefore: 0 });
    expect(result.sessionChanges.transitions).toEqual({});
    for (const p of result.policies) expect(p.after, p.policy).toEqual(p.before);
    expect(result.policies.find((p) => p.policy === 'per-ip')!.before.enforce).toBeGreaterThan(0);
  });

  it('reproduces every decision of sessions that ran side by side in the same millisecond', async () => {
    const lines = journalLines(together.dir);
    // the sessions' events really interleave in the journal
    const opens = lines.map((l, i) => (l.e === 'open' ? i : -1)).filter((i) => i >= 0);
    expect(opens.some((at, k) => k > 0 && lines.slice(opens[k - 1]!, at).some((l) => l.e === 'close'))).toBe(true);
    expect(opens.some((at, k) => k > 0 && !lines.slice(opens[k - 1]!, at).some((l) => l.e === 'close'))).toBe(true);
    const { result } = await replayJson(['--config', together.configFile, together.dir]);
    expect(result.sessions).toBe(SESSIONS);
    expect(result.decisions.compared).toBeGreaterThan(SESSIONS * 3);
    expect(result.decisions).toMatchObject({ changed: 0, otherPolicy: 0, unreachedAfter: 0, unreachedBefore: 0 });
    expect(result.policies.find((p) => p.policy === 'per-ip')!.before.enforce).toBeGreaterThan(0);
  });

  it('a lower threshold refuses exactly the sessions the gateway refuses when it runs that config', async () => {
    // the two runs are the same traffic: the cids differ, the order of the sessions does not
    const before = refusals(journalLines(base.dir));
    const after = refusals(journalLines(lower.dir));
    expect(after).toHaveLength(SESSIONS);
    const harsher = after.filter((r, i) => r && !before[i]).length;
    const kinder = after.filter((r, i) => !r && before[i]).length;
    expect(harsher).toBeGreaterThan(10);
    const expected: Record<string, number> = { 'accepted → refused': harsher };
    if (kinder) expected['refused → accepted'] = kinder;
    const { code, result } = await replayJson(['--config', lower.configFile, base.dir]);
    expect(code).toBe(0);
    expect(result.sessionChanges.transitions).toEqual(expected);
    expect(result.sessionChanges.harsher.length).toBeGreaterThan(0);
    expect(result.decisions.transitions['connect: continue → tempfail']).toBeGreaterThan(0);
    const perIp = result.policies.find((p) => p.policy === 'per-ip')!;
    expect(perIp.after.enforce).toBeGreaterThan(perIp.before.enforce);
    expect(perIp.after.first).toBeLessThanOrEqual(perIp.before.first!);
    // against a baseline config's replay instead of the recording: the same changes
    const vs = await replayJson(['--config', lower.configFile, '--baseline', base.configFile, base.dir]);
    expect(vs.result.sessionChanges.transitions).toEqual(result.sessionChanges.transitions);
    expect(vs.result.decisions.transitions).toEqual(result.decisions.transitions);
  });

  it('--from/--to keep to a time range; a torn last line and a malformed line are reported with file:line and skipped', async () => {
    const day2 = join(base.dir, '2030-01-02.jsonl');
    const text = readFileSync(day2, 'utf8');
    const lines = text.split('\n');
    const copy = join(mkdtempSync(join(tmpdir(), 'ag-replay-bad-')), '2030-01-02.jsonl');
    writeFileSync(copy, [lines[0], 'not json', ...lines.slice(1, -1)].join('\n') + '\n{"v":1,"t":1,"e":"con');
    const { code, result, err } = await replayJson(['--config', base.configFile, copy]);
    expect(code).toBe(0);
    expect(result.read.skipped).toBe(2);
    expect(err).toContain(`${copy}:2: not JSON`);
    expect(err.some((l) => l.startsWith(`${copy}:${lines.length + 1}: the last line has no newline`))).toBe(true);
    const ranged = await replayJson(['--config', base.configFile, base.dir, '--from', '2030-01-02', '--to', '2030-01-02T00:03:00Z']);
    expect(ranged.result.first).toBeGreaterThanOrEqual(Date.UTC(2030, 0, 2));
    expect(ranged.result.last).toBeLessThan(Date.UTC(2030, 0, 2, 0, 3));
    expect(ranged.result.read.outside).toBeGreaterThan(0);
  });
});
