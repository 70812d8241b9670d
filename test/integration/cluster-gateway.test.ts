/** Two gateways sharing one real redis-server throttle together (replicate: cluster). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { HAVE_REDIS, RedisServer, requireRedis, waitUntil } from '../helpers/redis.js';
import { proxyV1, sendMail, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

requireRedis();

describe.skipIf(!HAVE_REDIS)('two gateways, one Redis', () => {
  let redis: RedisServer;
  let backend: Backend;
  let a: TestGateway;
  let b: TestGateway;
  const clock = new ManualClock(1_800_000_000_000);

  beforeAll(async () => {
    redis = await RedisServer.start();
    backend = await startBackend();
    const body = `series:
  conn: { type: cidr, interval: 60, windows: 4, replicate: cluster }
  local: { type: cidr, interval: 60, windows: 4 }
record:
  - { on: connect, series: [conn, local] }
policies:
  - { name: per-24, on: connect, series: conn, mask: 24, windows: [0, 3], above: 5, action: tempfail }
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

  it("sees the other node's connections and refuses together", async () => {
    for (const [gw, ip] of [[a, '198.51.100.1'], [a, '198.51.100.2'], [a, '198.51.100.3'], [b, '198.51.100.4'], [b, '198.51.100.5']] as const) {
      const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
      expect(c.greeting.code).toBe(220);
      c.close();
    }
    // each node counts only its own in process, but the shared count is the sum
    expect(await a.gateway.store.count('local', '198.51.100.0/24', 0, 3)).toBe(3);
    expect(await waitUntil(async () => (await b.gateway.store.count('conn', '198.51.100.0/24', 0, 3)) === 5, 5000)).toBe(true);
    expect(await waitUntil(async () => (await a.gateway.store.count('conn', '198.51.100.0/24', 0, 3)) === 5, 5000)).toBe(true);
    const refusedB = await SmtpTestClient.connect(b.port, { preface: proxyV1('198.51.100.6') });
    expect(refusedB.greeting.code).toBe(421);
    await waitUntil(async () => (await a.gateway.store.count('conn', '198.51.100.0/24', 0, 3)) === 6, 5000);
    const refusedA = await SmtpTestClient.connect(a.port, { preface: proxyV1('198.51.100.7') });
    expect(refusedA.greeting.code).toBe(421);
    // a different /24 is untouched on both, and mail still flows
    const r = await sendMail(b.port, { preface: proxyV1('203.0.113.9') });
    expect(r[4]!.code).toBe(250);
    expect(a.gateway.store.status().state).toBe('ok');
  });
});

describe.skipIf(!HAVE_REDIS)('gateway with Redis unreachable', () => {
  const body = `series:
  conn: { type: cidr, interval: 60, windows: 4, replicate: cluster }
record:
  - { on: connect, series: conn }
policies:
  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 3], above: 1, action: tempfail }
`;

  for (const [onError, expectFirst, expectSecond] of [
    ['local', 220, 421], // counts in process: the limit still holds
    ['accept', 220, 220], // no counts: policies that need them are skipped
    ['tempfail', 421, 421], // no counts: refuse with a 4xx
  ] as const) {
    it(`on_error: ${onError}`, async () => {
      const dead = await RedisServer.start();
      const url = dead.url;
      await dead.stop();
      const backend = await startBackend();
      const gw = await startTestGateway({
        relay: `smtp://127.0.0.1:${backend.port}`,
        body,
        store: `store: { redis: "${url}", on_error: ${onError}, max_delay: 50ms }`,
      });
      try {
        const t0 = Date.now();
        const a = await SmtpTestClient.connect(gw.port, { preface: proxyV1('192.0.2.44') });
        const b = await SmtpTestClient.connect(gw.port, { preface: proxyV1('192.0.2.44') });
        expect([a.greeting.code, b.greeting.code]).toEqual([expectFirst, expectSecond]);
        if (onError === 'tempfail') expect(a.greeting.text).toMatch(/^4\.3\.0 Temporary local problem/);
        expect(Date.now() - t0).toBeLessThan(5000); // never hangs a session on a Redis fault
        expect(gw.gateway.store.status().state).toBe('fallback');
        a.close();
        b.close();
      } finally {
        await gw.close();
        await backend.close();
      }
    });
  }
});
