/**
 * The Redis store when Redis goes away, against a real redis-server started here on a free
 * loopback port: killed and paused under load (fallback, no hang, merge back), down at start,
 * on_error accept | tempfail.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { HAVE_REDIS, RedisServer, T0, type TestNode, freePort, nodeConfig, startNode, waitUntil } from '../helpers/redis.js';

describe.skipIf(!HAVE_REDIS)('redis store: Redis going away', () => {
  let server: RedisServer;
  const nodes: TestNode[] = [];

  beforeEach(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.store.close()));
    await server.stop();
  });

  async function node(opts: Partial<Parameters<typeof nodeConfig>[0]> = {}, tuning: Parameters<typeof startNode>[1] = {}): Promise<TestNode> {
    const n = await startNode(nodeConfig({ redis: server.url, ...opts }), { commandTimeoutMs: 300, ...tuning });
    nodes.push(n);
    return n;
  }

  /** Runs `op`, failing the test if it takes longer than `ms` (a hang guard, not a benchmark). */
  async function bounded<T>(op: () => Promise<T>, ms = 3000): Promise<T> {
    const t0 = Date.now();
    const r = await op();
    expect(Date.now() - t0).toBeLessThan(ms);
    return r;
  }

  it('killed under load: falls back, keeps counting, never hangs, merges back on restart', async () => {
    const a = await node({ maxPending: 10 });
    const b = await node();
    await a.store.add('conn', '192.0.2.1', 10);
    await a.store.flush();
    expect(await b.store.count('conn', '192.0.2.1')).toBe(10);

    await server.kill();
    for (let i = 0; i < 200; i++) {
      await bounded(() => a.store.add('conn', '192.0.2.1'));
      await bounded(() => a.store.add('conn', `198.51.100.${i % 50}`));
      await bounded(() => a.store.count('conn', '192.0.2.0/24', 0, 3));
    }
    const st = a.store.status();
    expect(st.state).toBe('fallback');
    expect(st.errors).toBeGreaterThan(0);
    expect(st.since).toBe(T0);
    expect(st.pending).toBeGreaterThanOrEqual(400);
    // local counting: this node's adds from before and during the outage
    expect(await a.store.count('conn', '192.0.2.1', 0, 3)).toBe(210);
    expect(await a.store.count('conn', '0.0.0.0/0', 0, 3)).toBe(410);
    // logged once, not per event
    expect(a.lines.filter((l) => l.msg.startsWith('redis unavailable'))).toHaveLength(1);

    await server.spawn(); // same port, empty (no persistence)
    expect(await waitUntil(() => a.store.status().state === 'ok', 10_000)).toBe(true);
    expect(a.store.status().pending).toBe(0);
    expect(a.lines.filter((l) => l.msg.startsWith('redis is back'))).toHaveLength(1);
    // Redis restarted empty: it now holds exactly the adds made during the outage
    const c = await node();
    expect(await c.store.countMany([
      { series: 'conn', key: '192.0.2.1', startv: 0, endv: 3 },
      { series: 'conn', key: '198.51.100.0/24', startv: 0, endv: 3 },
      { series: 'conn', key: '0.0.0.0/0', startv: 0, endv: 3 },
    ])).toEqual([200, 200, 400]);
    // the other node answers promptly throughout, and from the merged Redis once its own
    // connection is back (it made no call during the outage: its first may meet the dead link)
    expect(await waitUntil(async () => (await bounded(() => b.store.count('conn', '192.0.2.1', 0, 3))) === 200, 10_000)).toBe(true);
  });

  it('paused (slow) Redis: times out into fallback, merges once when it answers again', async () => {
    const a = await node({ maxDelay: 60, maxPending: 1_000_000 });
    await a.store.add('conn', '192.0.2.1', 5);
    await a.store.flush();
    server.pause();
    try {
      await a.store.add('conn', '192.0.2.1', 3);
      await bounded(() => a.store.flush()); // times out: the batch may or may not have been applied
      expect(a.store.status().state).toBe('fallback');
      expect(await bounded(() => a.store.count('conn', '192.0.2.1'))).toBe(8);
      await a.store.add('conn', '192.0.2.1', 2);
    } finally {
      server.resume();
    }
    expect(await waitUntil(() => a.store.status().state === 'ok', 10_000)).toBe(true);
    const c = await node();
    // the timed-out batch reached Redis when it woke up; its retry was recognized and skipped
    expect(await c.store.count('conn', '192.0.2.1')).toBe(10);
    expect(await a.store.count('conn', '192.0.2.1')).toBe(10);
  });

  it('bounds the merge buffer: past it, new keys are counted locally only', async () => {
    const a = await node({ maxPending: 1000 }, { maxBuffered: 50 });
    await server.kill();
    await a.store.add('conn', '192.0.2.1');
    expect(await a.store.count('conn', '192.0.2.1')).toBe(1); // the failed count switches to fallback
    expect(a.store.status().state).toBe('fallback');
    for (let i = 0; i < 100; i++) await a.store.add('conn', `198.51.100.${i}`);
    await a.store.add('conn', '192.0.2.1'); // an existing entry still aggregates
    expect(a.store.status().dropped).toBe(51);
    expect(a.lines.filter((l) => l.msg.startsWith('redis merge buffer full'))).toHaveLength(1);
    expect(await a.store.count('conn', '0.0.0.0/0')).toBe(102);
    await server.spawn();
    expect(await waitUntil(() => a.store.status().state === 'ok', 10_000)).toBe(true);
    expect(await a.store.countMany([
      { series: 'conn', key: '0.0.0.0/0', startv: 0, endv: 0 },
      { series: 'conn', key: '192.0.2.1', startv: 0, endv: 0 },
    ])).toEqual([51, 2]);
  });

  it('starts in fallback when Redis is down at start, and recovers', async () => {
    await server.kill();
    const a = await node({}, { connectTimeoutMs: 300 });
    expect(a.store.status().state).toBe('fallback');
    await a.store.add('conn', '192.0.2.1', 2);
    expect(await a.store.count('conn', '192.0.2.1')).toBe(2);
    await server.spawn();
    expect(await waitUntil(() => a.store.status().state === 'ok', 10_000)).toBe(true);
    expect(await a.store.count('conn', '192.0.2.1')).toBe(2);
  });

  for (const onError of ['tempfail', 'accept'] as const) {
    it(`on_error: ${onError} throws StoreError fast while Redis is unavailable, then recovers`, async () => {
      const a = await node({ onError });
      await a.store.add('conn', '192.0.2.1');
      await a.store.flush();
      await server.kill();
      // the first failure is noticed by the command itself (connection gone); after that, at once
      const first = await bounded(() => a.store.count('conn', '192.0.2.1').then(() => null, (e: unknown) => e));
      expect(first).toBeInstanceOf(StoreError);
      for (let i = 0; i < 20; i++) {
        await expect(bounded(() => a.store.count('conn', '192.0.2.1'), 200)).rejects.toBeInstanceOf(StoreError);
        await expect(bounded(() => a.store.add('conn', '192.0.2.1'), 200)).rejects.toBeInstanceOf(StoreError);
      }
      // series with replicate: none are not affected
      await a.store.add('local_only', '192.0.2.1');
      expect(await a.store.count('local_only', '192.0.2.1')).toBe(1);
      expect(a.store.status()).toMatchObject({ state: 'fallback', onError });
      await server.spawn();
      expect(await waitUntil(() => a.store.status().state === 'ok', 10_000)).toBe(true);
      // the adds refused with StoreError were still kept for the merge
      expect(await a.store.count('conn', '192.0.2.1')).toBe(20);
    });
  }

  it('connecting to a port nobody listens on gives up within the connect timeout', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const n = await startNode(nodeConfig({ redis: `redis://127.0.0.1:${port}`, onError: 'tempfail' }), { connectTimeoutMs: 300 });
    nodes.push(n);
    expect(Date.now() - t0).toBeLessThan(3000);
    await expect(n.store.count('conn', '192.0.2.1')).rejects.toBeInstanceOf(StoreError);
  });
});
