/**
 * Cluster limits that hold: two and three gateways over one real redis-server, default batching
 * (max_delay 1 s, max_pending 100), a policy "above 100 per /24", and a burst of connections
 * split across the nodes. Without reading near-threshold counts back after shipping, each node
 * let about 100 through (198 on two nodes); the documented bound is N + (nodes - 1) × maxUnshipped
 * (maxUnshipped = max_pending / 10 = 10 by default).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { RoutingStore } from '../../src/store/create.js';
import { HAVE_REDIS, RedisServer, requireRedis } from '../helpers/redis.js';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

requireRedis();

const LIMIT = 100;
const PER_NODE_UNSHIPPED = 10; // max_pending 100 / 10
const BURST = 360;
const CONCURRENCY_PER_NODE = 24;

/** The limit per /24 (IPv4) or per /48 (IPv6). */
const body = (v6: boolean): string => `series:
  conn: { type: ${v6 ? 'cidr_ipv6' : 'cidr'}, interval: 60, windows: 4, replicate: cluster }
record:
  - { on: connect, series: conn }
policies:
  - { name: per-net, on: connect, series: conn, mask: ${v6 ? 48 : 24}, windows: [0, 3], above: ${LIMIT}, action: tempfail }
`;

describe.skipIf(!HAVE_REDIS)('a cluster-wide limit holds across nodes', () => {
  let redis: RedisServer;
  let backend: Backend;
  beforeAll(async () => {
    redis = await RedisServer.start();
    backend = await startBackend();
  });
  afterAll(async () => {
    await backend?.close();
    await redis?.stop();
  });

  /** Runs the burst over `nodes` gateways (a fixed number in flight per node) from many addresses of one network; counts the 220s. */
  async function burst(nodes: number, net: string, v6: boolean): Promise<{ accepted: number; refused: number; rereads: number }> {
    const clock = new ManualClock(1_800_000_000_000);
    const store = `store: { redis: "${redis.url}", on_error: local }`; // defaults: max_delay 1s, max_pending 100
    const gws: TestGateway[] = [];
    try {
      // The bound holds while Redis answers: a command timeout long enough that a loaded machine
      // does not send a node into fallback (counting alone), which the test would report as such.
      const redisTuning = { commandTimeoutMs: 10_000, connectTimeoutMs: 10_000 };
      for (let n = 0; n < nodes; n++) gws.push(await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: body(v6), store, clock, redis: redisTuning }));
      let next = 0;
      let accepted = 0;
      let refused = 0;
      const worker = async (gw: TestGateway, node: number): Promise<void> => {
        for (;;) {
          const i = next++;
          if (i >= BURST) return;
          // every node sees the same network, from many addresses
          const host = (i * 7 + node) % 250;
          const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(v6 ? `${net}:${i % 7}::${host.toString(16)}` : `${net}.${host}`, 40000 + (i % 20000)) });
          if (c.greeting.code === 220) accepted++;
          else if (c.greeting.code === 421) refused++;
          c.close();
        }
      };
      await Promise.all(gws.flatMap((gw, node) => Array.from({ length: CONCURRENCY_PER_NODE }, () => worker(gw, node))));
      const rereads = gws.reduce((n, g) => n + (g.gateway.store instanceof RoutingStore ? g.gateway.store.redis.holdingReads : 0), 0);
      const errors = gws.map((g) => g.gateway.store.status()).filter((st) => st.errors > 0);
      expect(errors, 'a node lost Redis during the burst (it then counts alone: no bound)').toEqual([]);
      return { accepted, refused, rereads };
    } finally {
      for (const g of gws) await g.close();
    }
  }

  for (const [nodes, net, v6] of [
    [2, '198.51.100', false],
    [3, '203.0.113', false],
    [3, '2001:db8:77', true],
  ] as const) {
    it(`${nodes} nodes, ${v6 ? 'IPv6 /48' : 'IPv4 /24'}: at most ${LIMIT} + ${nodes - 1} × ${PER_NODE_UNSHIPPED} of a burst of ${BURST} get through`, async () => {
      const { accepted, refused, rereads } = await burst(nodes, net, v6);
      expect(accepted + refused).toBe(BURST);
      expect(accepted, `accepted ${accepted}`).toBeLessThanOrEqual(LIMIT + (nodes - 1) * PER_NODE_UNSHIPPED);
      // not refusing too early either: only the connections in flight at the limit can be refused below it
      expect(accepted).toBeGreaterThanOrEqual(LIMIT - nodes * CONCURRENCY_PER_NODE);
      expect(rereads).toBeGreaterThan(0);
    }, 60_000);
  }
});
