/**
 * Distinct series shared by two gateway nodes over one real redis-server (replicate: cluster):
 * recipients seen by either node count once, a limit holds across both, and past 64 values the
 * count the nodes read from Redis is the count one process makes of the same values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { DistinctSketch } from '../../src/series/distinct.js';
import { HAVE_REDIS, RedisServer, requireRedis, waitUntil } from '../helpers/redis.js';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

requireRedis();

describe.skipIf(!HAVE_REDIS)('two gateways, one Redis, distinct recipients per /24', () => {
  let redis: RedisServer;
  let backend: Backend;
  let a: TestGateway;
  let b: TestGateway;
  const clock = new ManualClock(1_800_000_000_000);

  beforeAll(async () => {
    redis = await RedisServer.start();
    backend = await startBackend();
    const body = `series:
  dest: { type: cidr, interval: 60, windows: 4, distinct: true, replicate: cluster }
  dest6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64, distinct: true, replicate: cluster }
  senders: { type: string, interval: 60, windows: 4, distinct: true, replicate: cluster }
record:
  - { on: rcpt, series: [dest, dest6], value: "{rcpt}" }
  - { on: mail, series: senders, key: "{mail_from_domain}", value: "{net}" }
policies:
  - { name: harvest, on: rcpt, series: dest, mask: 24, windows: [0, 3], above: 5, action: tempfail }
  - { name: harvest6, on: rcpt, series: dest6, mask: 48, windows: [0, 3], above: 5, action: tempfail }
`;
    const store = `store: { redis: "${redis.url}", on_error: local, max_delay: 50ms, max_pending: 100 }`;
    a = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body, store, clock });
    b = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body, store, clock });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await backend?.close();
    await redis?.stop();
  });

  async function rcpts(gw: TestGateway, ip: string, list: string[], from = 's@sender.example'): Promise<number[]> {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    try {
      await c.cmd('EHLO client.test');
      const codes = [(await c.cmd(`MAIL FROM:<${from}>`)).code];
      for (const r of list) codes.push((await c.cmd(`RCPT TO:<${r}>`)).code);
      return codes;
    } finally {
      c.close();
    }
  }

  const shared = async (gw: TestGateway, series: string, key: string, want: number) =>
    waitUntil(async () => (await gw.gateway.store.count(series, key, 0, 3)) === want, 5000);

  it("counts a recipient seen by both nodes once, and refuses the sixth on either", async () => {
    expect(await rcpts(a, '198.51.100.1', ['r1@x', 'r2@x', 'r3@x'])).toEqual([250, 250, 250, 250]);
    expect(await rcpts(b, '198.51.100.2', ['r3@x', 'r4@x', 'r1@x'])).toEqual([250, 250, 250, 250]);
    expect(await shared(a, 'dest', '198.51.100.0/24', 4)).toBe(true);
    expect(await shared(b, 'dest', '198.51.100.0/24', 4)).toBe(true);
    expect(await rcpts(a, '198.51.100.3', ['r5@x'])).toEqual([250, 250]);
    expect(await shared(b, 'dest', '198.51.100.0/24', 5)).toBe(true);
    expect(await rcpts(b, '198.51.100.4', ['r6@x', 'r2@x'])).toEqual([250, 451, 451]);
    expect(await shared(a, 'dest', '198.51.100.0/24', 6)).toBe(true);
    expect(await rcpts(a, '198.51.100.5', ['r1@x'])).toEqual([250, 451]);
    expect(await rcpts(a, '203.0.113.1', ['r1@x'])).toEqual([250, 250]); // another /24
    expect(await shared(b, 'dest', '198.51.100.4', 2)).toBe(true); // r6 and r2: refused, still counted
    expect(await shared(b, 'dest', '203.0.113.0/24', 1)).toBe(true);
    expect(await b.gateway.store.top('dest', { mask: 24 })).toEqual([
      { key: '198.51.100.0/24', count: 6 },
      { key: '203.0.113.0/24', count: 1 },
    ]);
  });

  it('IPv6 /48 and string keys too; past 64 values both nodes read the count one process makes', async () => {
    const many = Array.from({ length: 150 }, (_, i) => `bulk${i}@y`);
    // 150 distinct recipients from one /48 over two nodes, 15 per session (refusals count
    // towards server.max_errors): harvest6 refuses from the sixth on, and every one is counted
    const inSessions = async (gw: TestGateway, ip: string, list: string[]): Promise<number[]> => {
      const codes: number[] = [];
      for (let i = 0; i < list.length; i += 15) codes.push(...(await rcpts(gw, ip, list.slice(i, i + 15))).slice(1));
      return codes;
    };
    const codesA = await inSessions(a, '2001:db8:77:1::1', many.slice(0, 80));
    expect(codesA).toEqual([...Array(5).fill(250), ...Array(75).fill(451)]);
    expect(await shared(b, 'dest6', '2001:db8:77::/48', 80)).toBe(true); // a's adds reached Redis
    expect(await inSessions(b, '2001:db8:77:2::1', many.slice(60))).toEqual(Array(90).fill(451));
    const local = new DistinctSketch();
    for (const v of many) local.add(v);
    expect(await shared(a, 'dest6', '2001:db8:77::/48', local.count())).toBe(true);
    expect(await shared(b, 'dest6', '2001:db8:77::/48', local.count())).toBe(true);
    expect(await b.gateway.store.count('dest6', '2001:db8:77:1::/64', 0, 3)).toBe(80);
    // distinct client networks per sender domain, from both nodes
    await rcpts(a, '192.0.2.1', [], 'x@dom.example');
    await rcpts(b, '192.0.2.200', [], 'y@dom.example');
    await rcpts(b, '2001:db8:1::1', [], 'z@dom.example');
    expect(await shared(a, 'senders', 'dom.example', 2)).toBe(true); // 192.0.2.0/24 (twice) and 2001:db8:1::/64
    expect(a.gateway.store.status().state).toBe('ok');
  });
});
