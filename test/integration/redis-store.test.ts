/**
 * The Redis store against a real redis-server started here on a free loopback port: the store
 * contract, two nodes sharing counts, batching, TTLs, manager mode.
 * Redis going away under load is in redis-outage.test.ts.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { createRedisView } from '../../src/store/create.js';
import type { RedisSeriesStore } from '../../src/store/redis-store.js';
import { ttlSeconds } from '../../src/store/redis-layout.js';
import {
  HAVE_REDIS,
  RedisServer,
  T0,
  type TestNode,
  nodeConfig,
  requireRedis,
  startNode,
  waitUntil,
} from '../helpers/redis.js';
import { storeContract } from '../helpers/store-contract.js';

requireRedis();

const COVERAGE_TTL = ttlSeconds({ interval: 60, windows: 4 });

describe.skipIf(!HAVE_REDIS)('redis store', () => {
  let server: RedisServer;
  const nodes: TestNode[] = [];
  const views: RedisSeriesStore[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.store.close()));
    await Promise.all(views.splice(0).map((v) => v.close()));
  });

  async function node(opts: Partial<Parameters<typeof nodeConfig>[0]> = {}, tuning: Parameters<typeof startNode>[1] = {}): Promise<TestNode> {
    const n = await startNode(nodeConfig({ redis: server.url, ...opts }), tuning);
    nodes.push(n);
    return n;
  }

  /** A central view (reads Redis directly) with its own clock at T0 + `advanceMs`. */
  async function view(advanceMs = 0): Promise<RedisSeriesStore> {
    const v = await createRedisView(nodeConfig({ redis: server.url }), { clock: new ManualClock(T0 + advanceMs) });
    views.push(v);
    return v;
  }

  describe('contract', () => {
    const harness = (opts: Partial<Parameters<typeof nodeConfig>[0]>) => async () => {
      server.cli('FLUSHALL');
      const n = await startNode(nodeConfig({ redis: server.url, ...opts }));
      return { store: n.store, clock: n.clock, done: () => n.store.close() };
    };
    storeContract('redis (flush on every add, /24 kept)', harness({ maxPending: 1 }));
    storeContract('redis (batched: counts from unshipped adds, no /24 aggregate)', harness({ maxDelay: 60, maxPending: 1_000_000, mask24: false }));
  });

  describe('two nodes', () => {
    beforeEach(() => {
      server.cli('FLUSHALL');
    });

    it('see each other at /32, /24, /0 and other masks over window ranges', async () => {
      const a = await node();
      const b = await node();
      await a.store.add('conn', '192.0.2.1', 3);
      await b.store.addMany([
        { series: 'conn', key: '192.0.2.2', count: 2 },
        { series: 'conn', key: '198.51.100.7', count: 4 },
        { series: 'conn6', key: '2001:db8::2', count: 1 },
        { series: 'helo', key: 'mx.example', count: 1 },
      ]);
      await a.store.addMany([
        { series: 'conn6', key: '2001:db8::1', count: 1 },
        { series: 'helo', key: 'mx.example', count: 1 },
      ]);
      await Promise.all([a.store.flush(), b.store.flush()]);
      a.clock.advanceSeconds(60);
      b.clock.advanceSeconds(60);
      await a.store.add('conn', '192.0.2.1', 1);
      await a.store.flush();

      for (const n of [a, b]) {
        expect(
          await n.store.countMany([
            { series: 'conn', key: '192.0.2.1', startv: 0, endv: 1 },
            { series: 'conn', key: '192.0.2.1', startv: 1, endv: 1 },
            { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 0 },
            { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 3 },
            { series: 'conn', key: '0.0.0.0/0', startv: 0, endv: 3 },
            { series: 'conn', key: '0.0.0.0/0', startv: 1, endv: 1 },
            { series: 'conn', key: '192.0.0.0/16', startv: 0, endv: 3 }, // not kept: leaves summed
            { series: 'conn', key: '198.51.100.7/31', startv: 0, endv: 3 },
            { series: 'conn6', key: '2001:db8::/64', startv: 0, endv: 3 },
            { series: 'conn6', key: '2001:db8::/32', startv: 1, endv: 1 },
            { series: 'conn6', key: '::/0', startv: 0, endv: 3 },
            { series: 'helo', key: 'mx.example', startv: 0, endv: 3 },
            { series: 'local_only', key: '192.0.2.1', startv: 0, endv: 3 },
          ]),
        ).toEqual([4, 3, 1, 6, 10, 9, 6, 4, 2, 2, 2, 2, 0]);
        expect(await n.store.top('conn', { mask: 24 })).toEqual([
          { key: '192.0.2.0/24', count: 6 },
          { key: '198.51.100.0/24', count: 4 },
        ]);
      }
      // a central view pointed at Redis sees the same
      expect(await (await view(60_000)).count('conn', '0.0.0.0/0', 0, 3)).toBe(10);
    });

    it('stay exact when their configs keep different masks (a reload, a rolling deploy)', async () => {
      const a = await node(); // keeps /24
      const b = await node({ mask24: false }); // keeps /0 only
      await a.store.add('conn', '192.0.2.1', 2);
      await a.store.flush();
      await b.store.add('conn', '192.0.2.2', 3);
      await b.store.flush();
      for (const n of [a, b]) expect(await n.store.count('conn', '192.0.2.0/24', 0, 3)).toBe(5);
      expect(await b.store.removeItem('conn', '192.0.2.1')).toBe(1);
      for (const n of [a, b]) expect(await n.store.count('conn', '192.0.2.0/24', 0, 3)).toBe(3);
    });

    it('follow a config reload that starts keeping a new mask', async () => {
      const a = await node({ mask24: false });
      await a.store.add('conn', '192.0.2.1', 2);
      await a.store.flush();
      a.store.reconfigure(nodeConfig({ redis: server.url })); // now keeps /24
      await a.store.add('conn', '192.0.2.2', 3);
      await a.store.flush();
      expect(await a.store.count('conn', '192.0.2.0/24', 0, 3)).toBe(5);
      a.clock.advanceSeconds(60);
      await a.store.add('conn', '192.0.2.3', 1);
      await a.store.flush();
      expect(await a.store.countMany([
        { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 0 },
        { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 3 },
      ])).toEqual([1, 6]);
    });

    it('countMany over kept masks is one script call', async () => {
      const a = await node();
      await a.store.add('conn', '192.0.2.1', 2);
      await a.store.flush();
      server.cli('CONFIG', 'RESETSTAT');
      const counts = await a.store.countMany([
        { series: 'conn', key: '192.0.2.1', startv: 0, endv: 3 },
        { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 3 },
        { series: 'conn', key: '0.0.0.0/0', startv: 0, endv: 0 },
        { series: 'conn', key: '203.0.113.9', startv: 1, endv: 2 },
      ]);
      expect(counts).toEqual([2, 2, 2, 0]);
      const stats = server.cli('INFO', 'commandstats');
      const calls = [...stats.matchAll(/cmdstat_(eval|evalsha|hget|hmget|hgetall):calls=(\d+)/g)].map((m) => `${m[1]}=${m[2]}`);
      expect(calls.filter((c) => c.startsWith('eval')).map((c) => Number(c.split('=')[1])).reduce((x, y) => x + y, 0)).toBe(1);
      expect(calls.filter((c) => c.startsWith('hgetall'))).toEqual([]);
    });

    it('removes items cluster-wide', async () => {
      const a = await node();
      const b = await node();
      await a.store.add('conn', '192.0.2.1', 5);
      await b.store.add('conn', '192.0.2.9', 1);
      await b.store.add('conn', '203.0.113.1', 3);
      await Promise.all([a.store.flush(), b.store.flush()]);
      expect(await b.store.removeItem('conn', '192.0.2.0/24')).toBe(2);
      expect(await a.store.countMany([
        { series: 'conn', key: '0.0.0.0/0', startv: 0, endv: 3 },
        { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 3 },
        { series: 'conn', key: '192.0.2.1', startv: 0, endv: 3 },
      ])).toEqual([3, 0, 0]);
      expect(await a.store.removeItem('conn', '203.0.113.1')).toBe(1);
      expect(await b.store.count('conn', '0.0.0.0/0', 0, 3)).toBe(0);
    });
  });

  describe('batching', () => {
    beforeEach(() => {
      server.cli('FLUSHALL');
    });

    it('counts unshipped adds locally; others see them after max_pending adds', async () => {
      const a = await node({ maxDelay: 60, maxPending: 5 });
      const b = await node({ maxDelay: 60, maxPending: 5 });
      for (let i = 0; i < 4; i++) await a.store.add('conn', '192.0.2.1');
      expect(await a.store.count('conn', '192.0.2.1')).toBe(4);
      expect(await a.store.count('conn', '192.0.2.0/24')).toBe(4);
      expect(a.store.status().pending).toBe(4);
      expect(await b.store.count('conn', '192.0.2.1')).toBe(0);
      await a.store.add('conn', '192.0.2.1'); // the 5th add ships the batch
      expect(await waitUntil(async () => (await b.store.count('conn', '192.0.2.1')) === 5, 5000)).toBe(true);
      expect(await a.store.count('conn', '192.0.2.1')).toBe(5); // no double counting while in flight or after
      expect(a.store.status().pending).toBe(0);
    });

    it('ships within max_delay without reaching max_pending', async () => {
      const a = await node({ maxDelay: 0.2, maxPending: 1000 });
      const b = await node();
      await a.store.add('helo', 'mx.example', 2);
      expect(await b.store.count('helo', 'mx.example')).toBe(0);
      expect(await a.store.count('helo', 'mx.example')).toBe(2);
      expect(await waitUntil(async () => (await b.store.count('helo', 'mx.example')) === 2, 5000)).toBe(true);
    });

    it('every key expires within the series coverage plus margin', async () => {
      const a = await node();
      await a.store.add('conn', '192.0.2.1');
      await a.store.add('conn6', '2001:db8::1');
      await a.store.add('helo', 'mx.example');
      await a.store.flush();
      const keys = server.cli('--scan').split('\n').filter(Boolean);
      expect(keys.length).toBeGreaterThanOrEqual(6);
      expect(keys.some((k) => k.startsWith('ag:{conn}:60s:') && k.endsWith(':l'))).toBe(true);
      expect(keys.some((k) => k.startsWith('ag:{conn}:60s:') && k.endsWith(':a'))).toBe(true);
      for (const k of keys) {
        const ttl = Number(server.cli('TTL', k));
        expect(ttl, k).toBeGreaterThan(0);
        expect(ttl, k).toBeLessThanOrEqual(COVERAGE_TTL);
      }
      expect(COVERAGE_TTL).toBe(60 * 4 + 60);
    });
  });

  describe('max_keys', () => {
    beforeEach(() => {
      server.cli('FLUSHALL');
    });

    const ip = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const W = T0 / 60_000;

    it('caps the leaf hash of a window at max_keys: known keys keep counting, /0 still counts every add', async () => {
      const a = await node({ maxKeys: 1000, maxDelay: 60, maxPending: 1_000_000 });
      const b = await node({ maxKeys: 1000 });
      for (let i = 0; i < 5000; i += 500) {
        await a.store.addMany(Array.from({ length: 500 }, (_, j) => ({ series: 'conn', key: ip(i + j), count: 1 })));
        await a.store.addMany(Array.from({ length: 500 }, (_, j) => ({ series: 'helo', key: `d${i + j}.example`, count: 1 })));
      }
      await a.store.flush();
      expect(Number(server.cli('HLEN', `ag:{conn}:60s:${W}:l`))).toBe(1000);
      expect(Number(server.cli('HLEN', `ag:{helo}:60s:${W}:l`))).toBe(1000);
      expect(Number(server.cli('HGET', `ag:{conn}:60s:${W}:a`, '#o'))).toBe(4000);
      expect(Number(server.cli('HGET', `ag:{helo}:60s:${W}:a`, '#o'))).toBe(4000);
      expect(a.store.status().capped).toBe(8000);
      expect(a.lines.filter((l) => l.level === 40 && /max_keys/.test(l.msg))).toHaveLength(2); // once per series

      // the keys stored first keep counting exactly, from every node; the others were not stored
      await b.store.addMany(Array.from({ length: 1000 }, (_, i) => ({ series: 'conn', key: ip(i), count: 2 })));
      await b.store.add('helo', 'd0.example', 2);
      await b.store.flush();
      for (const n of [a, b]) {
        expect(await n.store.count('conn', ip(0))).toBe(3);
        expect(await n.store.count('conn', ip(999))).toBe(3);
        expect(await n.store.count('conn', ip(1000))).toBe(0);
        expect(await n.store.count('conn', ip(4999))).toBe(0);
        expect(await n.store.count('helo', 'd0.example')).toBe(3);
        expect(await n.store.count('helo', 'd4999.example')).toBe(0);
        // the aggregates took every add: prefix counts stay exact
        expect(await n.store.count('conn', '0.0.0.0/0')).toBe(5000 + 2000);
        expect(await n.store.count('conn', '10.0.19.0/24')).toBe(136); // 10.0.19.0 - 10.0.19.135: keys 4864-4999
      }
      expect(Number(server.cli('HLEN', `ag:{conn}:60s:${W}:l`))).toBe(1000);

      // the next window starts empty: new keys are stored again
      b.clock.advanceSeconds(60);
      await b.store.add('conn', ip(4999));
      await b.store.flush();
      expect(await b.store.count('conn', ip(4999))).toBe(1);
      expect(await b.store.count('conn', ip(4999), 0, 3)).toBe(1);
    });
  });

  describe('manager mode', () => {
    beforeEach(() => {
      server.cli('FLUSHALL');
    });

    it('decides on local counts and ships adds so a central view sees the sum', async () => {
      const a = await node({ replicate: 'manager' });
      const b = await node({ replicate: 'manager' });
      await a.store.add('conn', '192.0.2.1', 3);
      await b.store.add('conn', '192.0.2.1', 4);
      await b.store.add('helo', 'mx.example', 1);
      await Promise.all([a.store.flush(), b.store.flush()]);
      expect(await a.store.count('conn', '192.0.2.1', 0, 3)).toBe(3);
      expect(await b.store.count('conn', '192.0.2.0/24', 0, 3)).toBe(4);
      const v = await view();
      expect(await v.countMany([
        { series: 'conn', key: '192.0.2.1', startv: 0, endv: 3 },
        { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 3 },
        { series: 'helo', key: 'mx.example', startv: 0, endv: 3 },
      ])).toEqual([7, 7, 1]);
      expect(await v.top('conn')).toEqual([{ key: '192.0.2.1', count: 7 }]);
    });
  });
});
