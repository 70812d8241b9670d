/**
 * The ban list shared by two gateways over one real redis-server: a ban issued on one node is
 * enforced by the other, a lift takes effect on both, escalation uses the history both share, and
 * a Redis that goes away (and comes back empty) loses nothing: each node keeps its copy and
 * merges its changes back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { HAVE_REDIS, RedisServer, requireRedis, waitUntil } from '../helpers/redis.js';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

requireRedis();

const T0 = 1_800_000_000_000;
const MIN = 60_000;

describe.skipIf(!HAVE_REDIS)('bans shared through Redis', () => {
  let redis: RedisServer;
  let backend: Backend;
  let a: TestGateway;
  let b: TestGateway;
  const dirs: string[] = [];
  const clock = new ManualClock(T0);

  const node = async (resyncMs = 60_000): Promise<TestGateway> => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-bans-cluster-'));
    dirs.push(dir);
    return startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      clock,
      admin: '{ listen: "127.0.0.1:0" }',
      store: `store: { redis: "${redis.url}", on_error: local }`,
      banSync: { resyncMs, probeMs: 100 }, // changes travel by pub/sub; A and B resync only after a reconnect
      body: `state_dir: ${JSON.stringify(dir)}
series:
  conn: { type: cidr, interval: 60, windows: 4 }
record:
  - { on: connect, series: conn }
policies:
  - { name: flood, on: connect, series: conn, mask: 24, windows: [0, 3], above: 3, action: tempfail, ban: { for: 10m, factor: 2, max: 1h } }
`,
    });
  };
  const greet = async (gw: TestGateway, ip: string): Promise<number> => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    c.close();
    return c.greeting.code;
  };
  const admin = (gw: TestGateway): string => `http://127.0.0.1:${gw.gateway.adminAddress()!.port}`;
  const banOf = (gw: TestGateway, prefix: string) => gw.gateway.controls.list().find((x) => x.prefix === prefix);
  const shows = (gw: TestGateway, prefix: string, want = true): Promise<boolean> => waitUntil(() => (banOf(gw, prefix) !== undefined) === want, 15_000, 10); // after Redis returns, a node notices on its next probe and reconnects (ioredis backs off): seconds on a busy machine

  beforeAll(async () => {
    redis = await RedisServer.start();
    backend = await startBackend();
    a = await node();
    b = await node();
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await backend?.close();
    await redis?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('a ban issued on one node is enforced by the other, and a lift on either is lifted on both', async () => {
    for (const n of [1, 2, 3, 4]) await greet(a, `192.0.2.${n}`); // the fourth fires the policy on A
    expect(banOf(a, '192.0.2.0/24')).toMatchObject({ policy: 'flood', level: 0 });
    expect(await shows(b, '192.0.2.0/24')).toBe(true);
    expect(await greet(b, '192.0.2.99')).toBe(421);
    expect(banOf(b, '192.0.2.0/24')!.until).toBe(banOf(a, '192.0.2.0/24')!.until);

    const lift = await fetch(`${admin(b)}/bans?prefix=192.0.2.0/24`, { method: 'DELETE' });
    expect(lift.status).toBe(200);
    expect(await shows(a, '192.0.2.0/24', false)).toBe(true);
    expect(await greet(b, '192.0.2.99')).toBe(220);

    const add = await fetch(`${admin(a)}/bans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prefix: '2001:db8:9::/48', for: '1h' }) });
    expect(add.status).toBe(200);
    expect(await shows(b, '2001:db8:9::/48')).toBe(true);
    expect(await greet(b, '2001:db8:9:1::5')).toBe(421);
    expect(redis.cli('PTTL', 'ag:{bans}:b:2001:db8:9::/48')).toMatch(/^3[0-9]{6}$/); // one key per ban, with a TTL (~1 h)
  });

  it('escalates with the history both nodes share: banned on A, banned again on B, 20 minutes', async () => {
    for (const n of [1, 2, 3, 4]) await greet(a, `198.51.100.${n}`);
    const first = banOf(a, '198.51.100.0/24')!;
    expect(first.until - first.since).toBe(10 * MIN);
    clock.advance(10 * MIN + 1000); // expired everywhere; conn aged out
    for (const n of [1, 2, 3, 4]) await greet(b, `198.51.100.${n}`);
    expect(await waitUntil(() => banOf(b, '198.51.100.0/24')?.level === 1, 5000, 10)).toBe(true); // B adopted Redis' answer
    const second = banOf(b, '198.51.100.0/24')!;
    expect(second.until - second.since).toBe(20 * MIN);
    expect(await waitUntil(() => banOf(a, '198.51.100.0/24')?.level === 1, 5000, 10)).toBe(true);
  });

  it('Redis down: each node keeps its bans and its changes, and merges them back when Redis returns (even empty)', async () => {
    await redis.kill();
    // A bans by hand and B lifts a ban both know, while Redis is gone
    const add = await fetch(`${admin(a)}/bans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prefix: '203.0.113.0/24', for: '1h' }) });
    expect(add.status).toBe(200);
    const lift = await fetch(`${admin(b)}/bans?prefix=2001:db8:9::/48`, { method: 'DELETE' });
    expect(lift.status).toBe(200);
    expect(await waitUntil(() => a.gateway.controls.bans.stats().unshared === 1, 5000, 10)).toBe(true);
    expect(await greet(a, '203.0.113.7')).toBe(421); // enforced here at once
    expect(await greet(b, '198.51.100.77')).toBe(421); // what B already had still holds
    expect(await greet(a, '2001:db8:9:1::5')).toBe(421); // A has not heard of B's lift yet

    await redis.spawn(); // back, and empty
    expect(await shows(b, '203.0.113.0/24')).toBe(true);
    expect(await shows(a, '2001:db8:9::/48', false)).toBe(true);
    expect(await shows(b, '198.51.100.0/24')).toBe(true);
    expect(await waitUntil(() => redis.cli('EXISTS', 'ag:{bans}:b:198.51.100.0/24') === '1', 15_000, 20)).toBe(true); // refilled
    expect(await greet(a, '2001:db8:9:1::5')).toBe(220);
    expect(await greet(b, '203.0.113.7')).toBe(421);
    expect(a.gateway.controls.bans.stats().unshared).toBe(0);
  });

  it('a node that missed the messages catches up at its next resync: bans added and lifted behind its back', async () => {
    const c = await node(100);
    try {
      const until = clock.now() + 30 * MIN;
      const ban = JSON.stringify({ prefix: '192.0.2.128/25', since: clock.now(), until, policy: '(manual)', level: 0 });
      // written the way a node does, but without the message
      redis.cli('SET', 'ag:{bans}:b:192.0.2.128/25', ban, 'PX', String(30 * MIN));
      redis.cli('ZADD', 'ag:{bans}:i', String(until), '192.0.2.128/25');
      redis.cli('INCR', 'ag:{bans}:v');
      expect(await shows(c, '192.0.2.128/25')).toBe(true);
      expect(await greet(c, '192.0.2.200')).toBe(421);
      redis.cli('DEL', 'ag:{bans}:b:192.0.2.128/25');
      redis.cli('ZREM', 'ag:{bans}:i', '192.0.2.128/25');
      redis.cli('SET', 'ag:{bans}:l:192.0.2.128/25', String(clock.now()), 'PX', String(30 * MIN));
      redis.cli('INCR', 'ag:{bans}:v');
      expect(await shows(c, '192.0.2.128/25', false)).toBe(true); // lifted (the marker), not merged back
      expect(redis.cli('EXISTS', 'ag:{bans}:b:192.0.2.128/25')).toBe('0');
    } finally {
      await c.close();
    }
  });
});
