/**
 * Cluster limits that hold, at the store: counts asked with a threshold (CountQuery.above) on a
 * real redis-server, nodes that batch their adds (nothing shipped by the timer or max_pending
 * during a test), clients admitted in an order chosen to hide adds from each other.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CountQuery } from '../../src/store/types.js';
import { HAVE_REDIS, RedisServer, type TestNode, nodeConfig, requireRedis, startNode } from '../helpers/redis.js';

requireRedis();

/** A client of 198.51.100.0/24 asking the /24 count with the threshold `above`. */
const q24 = (above: number | undefined, series = 'conn'): CountQuery => {
  const q: CountQuery = { series, key: '198.51.100.0/24', startv: 0, endv: 3 };
  if (above !== undefined) q.above = above;
  return q;
};

describe.skipIf(!HAVE_REDIS)('counts near a threshold are exact across nodes', () => {
  let server: RedisServer;
  const nodes: TestNode[] = [];
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(() => {
    server.cli('FLUSHALL');
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.store.close()));
  });

  /** k nodes that never ship on their own during a test (max_delay 60 s on a manual clock, max_pending huge). */
  async function cluster(k: number, tuning: { nearMargin: number; maxUnshipped: number }, replicate: 'cluster' | 'manager' = 'cluster'): Promise<TestNode[]> {
    const out: TestNode[] = [];
    for (let i = 0; i < k; i++) out.push(await startNode(nodeConfig({ redis: server.url, maxDelay: 60, maxPending: 1_000_000, replicate }), tuning));
    nodes.push(...out);
    return out;
  }

  /** Clients arrive at the nodes in turn (each add, then its count); returns how many were let through (count ≤ limit). */
  async function admit(ns: TestNode[], limit: number, clients: number): Promise<number> {
    let admitted = 0;
    for (let i = 0; i < clients; i++) {
      const n = ns[i % ns.length]!;
      await n.store.add('conn', `198.51.100.${i % 250}`);
      const [c] = await n.store.countMany([q24(limit)]);
      if (c! <= limit) admitted++;
    }
    return admitted;
  }

  for (const k of [2, 3]) {
    it(`${k} nodes, clients in turn: at most N + (nodes - 1) × maxUnshipped let through, from the own-adds rule alone`, async () => {
      const ns = await cluster(k, { nearMargin: 0, maxUnshipped: 3 });
      const admitted = await admit(ns, 30, 200);
      expect(admitted).toBeLessThanOrEqual(30 + (k - 1) * 3);
      expect(admitted).toBeGreaterThanOrEqual(30); // and no client refused below the limit: counts are never too high
      expect(ns.reduce((s, n) => s + n.store.redis.holdingReads, 0)).toBeGreaterThan(0);
    });
  }

  it('without re-reads each node lets N through (what the rule prevents)', async () => {
    const ns = await cluster(2, { nearMargin: 0, maxUnshipped: 1_000_000 });
    expect(await admit(ns, 30, 200)).toBe(60);
  });

  it('near the threshold the node ships its adds and reads the count again; far from it, nothing changes', async () => {
    const [a, b] = await cluster(2, { nearMargin: 10, maxUnshipped: 1_000_000 });
    for (let i = 0; i < 5; i++) await a!.store.add('conn', `198.51.100.${i}`);
    // far from 100: one read, a's adds stay batched
    expect(await a!.store.countMany([q24(100)])).toEqual([5]);
    expect(a!.store.redis.holdingReads).toBe(0);
    expect(a!.store.status().pending).toBe(5);
    // b cannot see them yet
    expect(await b!.store.countMany([q24(undefined)])).toEqual([0]);
    // within 10 of 6: a ships, then reads again; b sees them
    expect(await a!.store.countMany([q24(6)])).toEqual([5]);
    expect(a!.store.redis.holdingReads).toBe(1);
    expect(a!.store.status().pending).toBe(0);
    expect(await b!.store.countMany([q24(undefined)])).toEqual([5]);
    // already above the threshold: the refusal stands, no second read
    await b!.store.add('conn', '198.51.100.9');
    expect(await b!.store.countMany([q24(2)])).toEqual([6]);
    expect(b!.store.redis.holdingReads).toBe(0);
  });

  it('counts unshipped adds, not their size (count: rcpts | bytes): one add of 500 is not read again, a fourth add is', async () => {
    const [a] = await cluster(1, { nearMargin: 0, maxUnshipped: 3 });
    await a!.store.add('conn', '198.51.100.1', 500);
    expect(await a!.store.countMany([q24(1_000_000)])).toEqual([500]);
    expect(a!.store.redis.holdingReads).toBe(0);
    for (let i = 2; i <= 4; i++) await a!.store.add('conn', `198.51.100.${i}`);
    expect(await a!.store.countMany([q24(1_000_000)])).toEqual([503]);
    expect(a!.store.redis.holdingReads).toBe(1);
    expect(a!.store.status().pending).toBe(0);
  });

  it('a count without a threshold, or of a manager series, is never read again', async () => {
    const [a] = await cluster(1, { nearMargin: 1_000, maxUnshipped: 1 }, 'manager');
    for (let i = 0; i < 5; i++) await a!.store.add('conn', `198.51.100.${i}`);
    expect(await a!.store.countMany([q24(6), q24(undefined)])).toEqual([5, 5]);
    expect(a!.store.redis.holdingReads).toBe(0);
    expect(a!.store.status().pending).toBe(5);
  });
});
