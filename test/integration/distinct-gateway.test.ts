/**
 * Distinct series through the real gateway (real backend, PROXY headers for IPv4 and IPv6
 * clients): distinct recipients per client /24 (and /64), distinct sender domains per /64,
 * distinct client networks per sender; the admin API's show ip, count, top and add, and the
 * series CLI, on distinct series.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { seriesCommand } from '../../src/cli/series.js';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

const BODY = `
series:
  dest: { type: cidr, interval: 60, windows: 4, distinct: true }
  dest6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64, distinct: true }
  domains6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64, distinct: true }
  sender_nets: { type: string, interval: 60, windows: 4, distinct: true }
record:
  - { on: rcpt, series: [dest, dest6], value: "{rcpt}" }
  - { on: mail, series: domains6, value: "{mail_from_domain}" }
  - { on: mail, series: sender_nets, key: "{mail_from}", value: "{net}" }
policies:
  - { name: harvest, on: rcpt, series: dest, mask: 24, windows: [0, 3], above: 5, action: tempfail, reply: "451 4.7.1 too many distinct recipients from your network" }
  - { name: harvest6, on: rcpt, series: dest6, mask: 64, windows: [0, 3], above: 5, action: tempfail }
  - { name: domains-per-64, on: mail, series: domains6, mask: 64, windows: [0, 3], above: 2, action: reject }
  - { name: roaming-sender, on: mail, series: sender_nets, key: "{mail_from}", windows: [0, 3], above: 2, action: tempfail }
`;

const TOKEN = 'distinct-admin-token';

describe('distinct series through the gateway', () => {
  let backend: Backend;
  let gw: TestGateway;
  let base: string;
  const clock = new ManualClock(1_800_000_000_000);

  /** One session from `ip`: MAIL FROM `from`, then each RCPT; the codes of MAIL and the RCPTs. */
  async function session(ip: string, from: string, rcpts: string[]): Promise<number[]> {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    try {
      expect(c.greeting.code).toBe(220);
      await c.cmd('EHLO client.test');
      const codes = [(await c.cmd(`MAIL FROM:<${from}>`)).code];
      for (const r of rcpts) codes.push((await c.cmd(`RCPT TO:<${r}>`)).code);
      return codes;
    } finally {
      c.close();
    }
  }

  async function api(method: string, p: string, body?: unknown): Promise<Record<string, unknown>> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(`${base}${p}`, init);
    return { status: res.status, ...((await res.json()) as Record<string, unknown>) };
  }

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: BODY, clock, admin: `{ listen: "127.0.0.1:0", token: ${TOKEN} }` });
    base = `http://127.0.0.1:${gw.gateway.adminAddress()!.port}`;
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
  });

  it('distinct recipients per /24: repeats do not count, the sixth distinct one is refused, other /24s go on, it ages out', async () => {
    expect(await session('192.0.2.1', 'a@one.example', ['r1@x.example', 'r2@x.example', 'r1@x.example', 'R2@X.example'])).toEqual([250, 250, 250, 250, 250]);
    expect(await session('192.0.2.2', 'b@one.example', ['r1@x.example', 'r3@x.example', 'r4@x.example', 'r5@x.example'])).toEqual([250, 250, 250, 250, 250]);
    expect(await gw.gateway.store.count('dest', '192.0.2.0/24', 0, 3)).toBe(5);
    const refused = await session('192.0.2.3', 'c@one.example', ['r6@x.example', 'r1@x.example']);
    expect(refused).toEqual([250, 451, 451]); // r6 is the sixth; counted, so the /24 stays over
    expect(await session('198.51.100.1', 'd@one.example', ['r6@x.example'])).toEqual([250, 250]);
    clock.advanceSeconds(240);
    expect(await session('192.0.2.3', 'c@one.example', ['r7@x.example'])).toEqual([250, 250]);
  });

  it('IPv6: distinct recipients per /64 and distinct sender domains per /64', async () => {
    const rcpts = ['a@y.example', 'b@y.example', 'c@y.example', 'd@y.example', 'e@y.example', 'a@y.example', 'f@y.example'];
    expect(await session('2001:db8:5:1::10', 's@d1.example', rcpts)).toEqual([250, 250, 250, 250, 250, 250, 250, 451]);
    expect(await session('2001:db8:5:1::11', 's@d2.example', [])).toEqual([250]);
    expect(await session('2001:db8:5:1::12', 's@d1.example', [])).toEqual([250]); // d1 again: still 2 domains
    expect((await session('2001:db8:5:1::13', 's@d3.example', []))[0]).toBe(550);
    expect((await session('2001:db8:5:2::13', 's@d3.example', []))[0]).toBe(250); // another /64
  });

  it('distinct client networks per sender address ({net}): the third /24 is refused', async () => {
    expect(await session('203.0.113.5', 'roamer@z.example', [])).toEqual([250]);
    expect(await session('203.0.113.99', 'roamer@z.example', [])).toEqual([250]); // same /24
    expect(await session('198.18.0.1', 'roamer@z.example', [])).toEqual([250]);
    expect(await session('2001:db8:9::1', 'roamer@z.example', [])).toEqual([451]); // a /64 is a network too
    expect(await gw.gateway.store.count('sender_nets', 'roamer@z.example', 0, 3)).toBe(3);
  });

  it('admin: show ip totals the distinct values over windows; count, top by distinct values at a mask, add with a value', async () => {
    clock.advanceSeconds(240);
    await session('192.0.2.10', 'a@one.example', ['p1@x.example', 'p2@x.example']);
    clock.advanceSeconds(60);
    await session('192.0.2.10', 'a@one.example', ['p2@x.example', 'p3@x.example']);
    await session('192.0.2.11', 'a@one.example', ['p3@x.example']);
    const show = await api('GET', '/show/ip/192.0.2.10');
    const dest = (show.series as Array<Record<string, unknown>>).find((s) => s.name === 'dest')!;
    expect(dest).toMatchObject({ distinct: true, windows: [2, 2, 0, 0], total: 3 }); // p1 p2 | p2 p3: 3 distinct, not 4
    expect(await api('GET', '/series/dest/count?key=192.0.2.0/24&windows=0-3')).toMatchObject({ count: 3 });
    expect(await api('GET', '/series/dest/count?key=192.0.2.0/28&windows=0-0')).toMatchObject({ count: 2 });
    expect(await api('GET', '/series/dest/top?mask=24&windows=0-3')).toMatchObject({ top: [{ key: '192.0.2.0/24', count: 3 }] });
    expect(await api('GET', '/series/dest/top?windows=0-3')).toMatchObject({ top: [{ key: '192.0.2.10', count: 3 }, { key: '192.0.2.11', count: 1 }] });
    expect(await api('POST', '/series/dest/add', { key: '192.0.2.11', value: 'p9@x.example' })).toMatchObject({ status: 200, count: 2 });
    expect(await api('POST', '/series/dest/add', { key: '192.0.2.11', count: 2 })).toMatchObject({ status: 400, code: 'AG_VALUE_INVALID' });
    expect(await api('POST', '/series/sender_nets/add', { key: 'x@y', value: 'v'.repeat(2000) })).toMatchObject({ status: 400, code: 'AG_VALUE_INVALID' });
    const listed = (await api('GET', '/series')).series as Array<Record<string, unknown>>;
    expect(listed.find((s) => s.name === 'dest')).toMatchObject({ distinct: true });

    let out = '';
    const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s), env: {} };
    expect(await seriesCommand(['add', 'dest', '192.0.2.12', '--value', 'q@x.example', '--admin', base, '--token', TOKEN], io)).toBe(0);
    expect(out).toContain('window 0 now holds 1 distinct value');
    out = '';
    expect(await seriesCommand(['show', '192.0.2.10', '--admin', base, '--token', TOKEN], io)).toBe(0);
    expect(out).toMatch(/dest \(distinct\)\s+60s\s+3\s+2 2 0 0/);
  });
});
