/**
 * The Redis store over a real 3-master Redis Cluster on loopback (redis-server
 * --cluster-enabled yes, joined with redis-cli --cluster create): the store contract, and two
 * nodes sharing counts with series spread over different masters.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KeyLayout } from '../../src/store/redis-layout.js';
import { HAVE_REDIS, RedisCluster, type TestNode, nodeConfig, requireRedis, startNode } from '../helpers/redis.js';
import { storeContract } from '../helpers/store-contract.js';

requireRedis();

describe.skipIf(!HAVE_REDIS)('redis store on a Redis Cluster', () => {
  let cluster: RedisCluster;
  const nodes: TestNode[] = [];

  beforeAll(async () => {
    cluster = await RedisCluster.start(3);
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.store.close()));
  });

  function flushAll(): void {
    for (const n of cluster.nodes) n.cli('FLUSHALL');
  }

  async function node(opts: Partial<Parameters<typeof nodeConfig>[0]> = {}): Promise<TestNode> {
    const n = await startNode(nodeConfig({ redis: cluster.urls, ...opts }));
    nodes.push(n);
    return n;
  }

  storeContract('redis cluster', async () => {
    flushAll();
    const n = await startNode(nodeConfig({ redis: cluster.urls, maxPending: 1 }));
    return { store: n.store, clock: n.clock, done: () => n.store.close() };
  });

  describe('two nodes', () => {
    beforeEach(flushAll);

    it('share counts; each series lives in one slot, series spread over the masters', async () => {
      const a = await node();
      const b = await node();
      expect(a.store.status().kind).toBe('memory+redis-cluster');
      await a.store.add('conn', '192.0.2.1', 3);
      await b.store.add('conn', '192.0.2.2', 2);
      await a.store.add('conn6', '2001:db8::1', 1);
      await b.store.add('conn6', '2001:db8:0:0:ffff::2', 1);
      await a.store.add('helo', 'mx.example', 1);
      await b.store.add('helo', 'mx.example', 1);
      await Promise.all([a.store.flush(), b.store.flush()]);
      a.clock.advanceSeconds(60);
      b.clock.advanceSeconds(60);
      await b.store.add('conn', '192.0.2.1', 1);
      await b.store.flush();
      for (const n of [a, b]) {
        expect(
          await n.store.countMany([
            { series: 'conn', key: '192.0.2.1', startv: 0, endv: 3 },
            { series: 'conn', key: '192.0.2.0/24', startv: 1, endv: 1 },
            { series: 'conn', key: '0.0.0.0/0', startv: 0, endv: 3 },
            { series: 'conn', key: '192.0.0.0/20', startv: 0, endv: 3 },
            { series: 'conn6', key: '2001:db8::/64', startv: 0, endv: 3 },
            { series: 'conn6', key: '::/0', startv: 1, endv: 1 },
            { series: 'helo', key: 'mx.example', startv: 0, endv: 3 },
          ]),
        ).toEqual([4, 5, 6, 6, 2, 2, 2]);
        expect(await n.store.top('conn6', { mask: 64 })).toEqual([{ key: '2001:db8::/64', count: 2 }]);
      }

      // every key of one series hashes to one slot ({series} hash tag)
      const layout = new KeyLayout();
      const first = cluster.nodes[0]!;
      for (const s of ['conn', 'conn6', 'helo']) {
        const spec = { name: s, interval: 60 };
        const slots = new Set([layout.leaf(spec, 1), layout.agg(spec, 2), layout.seq(spec, 'x')].map((k) => first.cli('CLUSTER', 'KEYSLOT', k)));
        expect(slots.size).toBe(1);
      }
      // and the three series do not all sit on one master
      const holding = cluster.nodes.filter((n) => Number(n.cli('DBSIZE')) > 0);
      expect(holding.length).toBeGreaterThan(1);
    });

    it('removes items across the cluster', async () => {
      const a = await node();
      const b = await node();
      await a.store.add('conn', '192.0.2.1', 5);
      await b.store.add('conn', '192.0.2.9', 1);
      await Promise.all([a.store.flush(), b.store.flush()]);
      expect(await b.store.removeItem('conn', '192.0.2.0/24')).toBe(2);
      expect(await a.store.count('conn', '0.0.0.0/0', 0, 3)).toBe(0);
    });
  });
});
