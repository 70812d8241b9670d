/**
 * Bans and protected networks through a running gateway: real SMTP sessions (PROXY headers give
 * each its client, IPv4 and IPv6), the admin API, /metrics and the `auditgate bans` CLI. Time is
 * an injected ManualClock, so expiry and escalation need no waiting.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bansCommand } from '../../src/cli/bans.js';
import type { CliIo } from '../../src/cli/admin-args.js';
import { parseConfigText } from '../../src/config/load.js';
import { ManualClock } from '../../src/series/clock.js';
import { proxyV1, sendMail, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

const T0 = 1_800_000_000_000;
const MIN = 60_000;

const body = (stateDir: string, protectedList: string) => `
state_dir: ${JSON.stringify(stateDir)}
monitors: ["300,6"]
protected: ${protectedList}
series:
  conn: { type: cidr, interval: 60, windows: 4 }
  conn6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64 }
record:
  - { on: connect, series: [conn, conn6] }
policies:
  - { name: flood, on: connect, series: conn, mask: 24, windows: [0, 3], above: 3, action: tempfail, ban: { for: 10m, factor: 2, max: 25m } }
  - { name: flood6, on: connect, series: conn6, mask: 64, windows: [0, 3], above: 3, action: tempfail, ban: 10m }
  - { name: watch, on: helo, series: conn, mask: 32, windows: [0, 3], above: 0, action: tempfail, mode: shadow, ban: 10m }
`;

describe('bans and protected networks', () => {
  let backend: Backend;
  let gw: TestGateway;
  let dir: string;
  let base: string;
  const clock = new ManualClock(T0);

  const connect = async (ip: string): Promise<{ code: number; text: string }> => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    c.close();
    return c.greeting;
  };
  const api = async (method: string, p: string, json?: unknown): Promise<{ status: number; body: Record<string, unknown>; text: string }> => {
    const init: RequestInit = { method };
    if (json !== undefined) init.body = JSON.stringify(json);
    if (json !== undefined) init.headers = { 'content-type': 'application/json' };
    const res = await fetch(`${base}${p}`, init);
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* metrics */
    }
    return { status: res.status, body: parsed, text };
  };
  const cli = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), env: {} };
    const code = await bansCommand([...args, '--admin', base], io);
    return { code, out, err };
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-bans-gw-'));
    backend = await startBackend();
    gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: body(dir, '[203.0.113.0/24]'), clock, admin: '{ listen: "127.0.0.1:0" }' });
    const a = gw.gateway.adminAddress()!;
    base = `http://127.0.0.1:${a.port}`;
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a policy with ban bans the prefix at its mask: refused at connect with 421 and the time left, counted, until it expires', async () => {
    for (const n of [1, 2, 3]) expect((await connect(`192.0.2.${n}`)).code).toBe(220);
    const fourth = await connect('192.0.2.4');
    expect(fourth.code).toBe(421); // the policy itself refuses the fourth, and bans the /24
    const banned = await connect('192.0.2.99');
    expect(banned).toEqual({ code: 421, text: expect.stringMatching(/^4\.7\.0 Your network 192\.0\.2\.0\/24 is banned \(try again in 10m\) \[\w+@gw\.test\]$/) });
    expect(gw.logs.some((l) => l.msg === 'banned client refused' && l.client === '192.0.2.99' && l.ban === '192.0.2.0/24' && l.policy === 'flood')).toBe(true);
    // a refused banned connect still counts: a connection and a rejection
    expect(await gw.gateway.store.count('connections:300,6', '192.0.2.99')).toBe(1);
    expect(await gw.gateway.store.count('rejections:300,6', '192.0.2.99')).toBe(1);
    expect((await connect('192.0.3.1')).code).toBe(220); // the next /24 is not banned

    const metrics = (await api('GET', '/metrics')).text;
    expect(metrics).toMatch(/^auditgate_bans_active 1$/m);
    expect(metrics).toMatch(/^auditgate_bans_issued_total\{policy="flood"\} 1$/m);
    expect(metrics).toMatch(/^auditgate_bans_refused_total 1$/m);

    clock.advance(10 * MIN - 1000);
    expect((await connect('192.0.2.99')).text).toMatch(/try again in 1s/);
    clock.advance(1000);
    expect((await connect('192.0.2.99')).code).toBe(220); // expired (and the counts aged out)
    expect((await api('GET', '/metrics')).text).toMatch(/^auditgate_bans_active 0$/m);
  });

  it('escalates a prefix banned again soon after: 10m, then 20m, then capped at 25m', async () => {
    const lengths: number[] = [];
    for (let round = 0; round < 3; round++) {
      clock.advance(5 * MIN); // every window of conn aged out
      for (const n of [1, 2, 3, 4]) await connect(`192.0.2.${10 + n}`);
      const b = (await api('GET', '/bans')).body as { bans: Array<{ prefix: string; seconds_left: number; level: number }> };
      const ban = b.bans.find((x) => x.prefix === '192.0.2.0/24')!;
      lengths.push(ban.seconds_left / 60);
      clock.advance(ban.seconds_left * 1000);
    }
    expect(lengths).toEqual([20, 25, 25]); // the first test's ban was the 10m one
  });

  it('bans IPv6 clients at the policy mask (/64)', async () => {
    clock.advance(30 * MIN);
    for (const n of [1, 2, 3, 4]) await connect(`2001:db8:1:2::${n}`);
    expect((await connect('2001:db8:1:2:ffff::1')).text).toMatch(/^4\.7\.0 Your network 2001:db8:1:2::\/64 is banned \(try again in 10m\)/);
    expect((await connect('2001:db8:1:3::1')).code).toBe(220);
  });

  it('never refuses, tarpits or bans a protected client; the policy is logged as mode protected', async () => {
    for (let i = 0; i < 6; i++) expect((await connect('203.0.113.5')).code).toBe(220);
    expect(await gw.gateway.store.count('conn', '203.0.113.0/24', 0, 3)).toBe(6); // still counted
    expect(gw.logs.some((l) => l.policy === 'flood' && l.mode === 'protected' && l.client === '203.0.113.5')).toBe(true);
    expect(gw.gateway.controls.list().some((b) => b.prefix.startsWith('203.0.113.'))).toBe(false);
    expect((await api('GET', '/metrics')).text).toMatch(/^auditgate_decisions_total\{policy="flood",action="tempfail",mode="protected"\} \d+$/m);
    // mail flows too
    expect((await sendMail(gw.port, { preface: proxyV1('203.0.113.5') }))[4]!.code).toBe(250);
  });

  it('a shadow policy with ban bans nothing: it only logs', async () => {
    expect((await sendMail(gw.port, { preface: proxyV1('198.18.5.1') }))[4]!.code).toBe(250);
    expect(gw.logs.some((l) => l.policy === 'watch' && l.mode === 'shadow' && l.client === '198.18.5.1')).toBe(true);
    expect(gw.gateway.controls.list().some((b) => b.prefix.startsWith('198.18.5.'))).toBe(false);
    expect((await connect('198.18.5.1')).code).toBe(220);
  });

  it('the admin API lists, adds and lifts bans; a ban over a protected network and bad input are clear errors', async () => {
    const added = await api('POST', '/bans', { prefix: '198.51.100.7', for: '1h' });
    expect(added.status).toBe(200);
    expect(added.body.ban).toMatchObject({ prefix: '198.51.100.7/32', policy: '(manual)', seconds_left: 3600, level: 0 });
    expect((await connect('198.51.100.7')).text).toMatch(/banned \(try again in 60m\)/);

    expect(await api('POST', '/bans', { prefix: '203.0.0.0/16', for: 60 })).toMatchObject({ status: 409, body: { code: 'AG_BAN', error: '203.0.0.0/16 covers the protected network 203.0.113.0/24 (protected:): it is never banned' } });
    expect(await api('POST', '/bans', { prefix: '198.51.100.7', for: '-5m' })).toMatchObject({ status: 400, body: { code: 'AG_ADMIN_BAD_REQUEST', error: expect.stringMatching(/^"for": invalid duration "-5m"/) } });
    expect(await api('POST', '/bans', { prefix: 'garbage', for: '1h' })).toMatchObject({ status: 400, body: { code: 'AG_KEY_INVALID' } });
    expect(await api('DELETE', '/bans?prefix=garbage')).toMatchObject({ status: 400, body: { code: 'AG_KEY_INVALID', error: expect.stringMatching(/"garbage" is not an IP address or CIDR prefix/) } });
    expect(await api('DELETE', '/bans?prefix=198.51.100.0/24')).toMatchObject({ status: 404, body: { code: 'AG_BAN_NOT_FOUND', error: 'no ban on 198.51.100.0/24; bans sharing addresses with it: 198.51.100.7/32' } });

    const listed = (await api('GET', '/bans')).body as { total: number; bans: Array<{ prefix: string }> };
    expect(listed.bans.map((b) => b.prefix)).toContain('198.51.100.7/32');
    expect((await api('DELETE', '/bans?prefix=198.51.100.7')).body.lifted).toMatchObject({ prefix: '198.51.100.7/32' });
    expect((await connect('198.51.100.7')).code).toBe(220);
    expect((await api('GET', '/metrics')).text).toMatch(/^auditgate_bans_lifted_total 1$/m);
  });

  it('auditgate bans list | add | lift, with clear errors for garbage, a negative duration and a protected network', async () => {
    expect(await cli('add', '198.51.100.0/24', '--for', '30m')).toMatchObject({ code: 0, out: expect.stringMatching(/^banned 198\.51\.100\.0\/24 until \S+ \(30m\)\n$/) });
    const list = await cli('list');
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^PREFIX\s+LEFT\s+UNTIL\s+POLICY\s+LEVEL\s+NODE\n/);
    expect(list.out).toMatch(/^198\.51\.100\.0\/24\s+30m\s+\S+\s+\(manual\)\s+0\s+gw\.test$/m);
    expect(await cli('lift', 'garbage')).toMatchObject({ code: 2, err: expect.stringMatching(/^auditgate bans: "garbage" is not an IP address or CIDR prefix/) });
    expect(await cli('add', '198.51.100.9', '--for', '-5m')).toMatchObject({ code: 2, err: expect.stringMatching(/^auditgate bans: --for: invalid duration "-5m"/) });
    expect(await cli('add', '198.51.100.9')).toMatchObject({ code: 2, err: expect.stringMatching(/add needs --for DURATION/) });
    expect(await cli('add', '203.0.113.9', '--for', '1h')).toMatchObject({ code: 1, err: 'auditgate bans: 203.0.113.9/32 covers the protected network 203.0.113.0/24 (protected:): it is never banned (AG_BAN, HTTP 409)\n' });
    expect(await cli('lift', '198.51.100.0/24')).toMatchObject({ code: 0, out: expect.stringMatching(/^lifted the ban on 198\.51\.100\.0\/24 \(\(manual\), 30m left\)\n$/) });
    expect(await cli('lift', '198.51.100.0/24')).toMatchObject({ code: 1, err: expect.stringMatching(/no ban on 198\.51\.100\.0\/24 \(AG_BAN_NOT_FOUND, HTTP 404\)/) });
  });

  it('protected beats a ban: a network protected after it was banned connects', async () => {
    await api('POST', '/bans', { prefix: '198.51.100.0/24', for: '1h' });
    expect((await connect('198.51.100.7')).code).toBe(421);
    const next = parseConfigText(
      `server: { hostname: gw.test, listen: ["127.0.0.1:0"], proxy_protocol: [127.0.0.0/8] }
relay: { url: "smtp://127.0.0.1:${backend.port}" }
admin: { listen: "127.0.0.1:0" }
${body(dir, '[203.0.113.0/24, 198.51.100.7]')}`,
      'test-gateway.yaml',
    );
    // a reload must not change server.listen: take the one the gateway runs with
    await gw.gateway.reload({ ...next, server: gw.gateway.config.server, admin: gw.gateway.config.admin });
    expect((await connect('198.51.100.7')).code).toBe(220);
    expect((await connect('198.51.100.8')).code).toBe(421);
  });
});
