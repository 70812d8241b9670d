/**
 * Bans shared through Redis by a workers gateway: its primary keeps the shared ban list (one
 * real redis-server, a one-process gateway as the other node) and passes what the other node
 * does on to both its workers; what its own workers ban reaches the other node.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HAVE_REDIS, RedisServer, requireRedis, waitUntil } from '../helpers/redis.js';
import { proxyV1, SmtpTestClient, startTestGateway, type TestGateway } from '../helpers/smtp.js';
import { getJson, killGateways, start } from '../helpers/workers.js';

requireRedis();

const POLICY = '  - { name: flood, on: connect, series: conn, mask: 24, windows: [0, 1], above: 3, action: tempfail, ban: 10m }';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  killGateways();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function greetings(port: number, ips: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const ip of ips) {
    const c = await SmtpTestClient.connect(port, { preface: proxyV1(ip) });
    out.push(`${c.greeting.code} ${c.greeting.text}`);
    c.close();
  }
  return out;
}

describe.skipIf(!HAVE_REDIS)('server.workers: 2, bans shared through Redis', () => {
  it("applies the other node's bans and lifts in both workers, and shares its own", async () => {
    const redis = await RedisServer.start();
    cleanups.push(() => redis.stop());
    const store = `store: { redis: "${redis.url}", on_error: local }\n`;
    const { port, admin } = await start({ workers: 2, env: { NODE_CLUSTER_SCHED_POLICY: 'rr' }, policies: POLICY, extra: store });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-wbans-'));
    cleanups.push(() => Promise.resolve(fs.rmSync(dir, { recursive: true, force: true })));
    const other: TestGateway = await startTestGateway({
      relay: `dir:${path.join(dir, 'mail')}`,
      admin: '{ listen: "127.0.0.1:0" }',
      store,
      body: `state_dir: ${JSON.stringify(dir)}\nseries:\n  conn: { type: cidr, interval: 1h, windows: 2 }\nrecord:\n  - { on: connect, series: conn }\npolicies:\n${POLICY}\n`,
    });
    cleanups.push(() => other.close());
    const otherAdmin = `http://127.0.0.1:${other.gateway.adminAddress()!.port}`;
    const listed = async (base: string, prefix: string): Promise<boolean> => ((await getJson(`${base}/bans`)).bans as Array<{ prefix: string }>).some((b) => b.prefix === prefix);

    // a ban made on the other node: both workers refuse (connections go to them in turn)
    const add = await fetch(`${otherAdmin}/bans`, { method: 'POST', body: JSON.stringify({ prefix: '192.0.2.0/24', for: '1h' }), headers: { 'content-type': 'application/json' } });
    expect(add.status).toBe(200);
    expect(await waitUntil(() => listed(admin, '192.0.2.0/24'), 10_000, 50)).toBe(true);
    for (const g of await greetings(port, ['192.0.2.1', '192.0.2.2'])) expect(g).toMatch(/^421 4\.7\.0 Your network 192\.0\.2\.0\/24 is banned/);
    // lifted on the other node: both workers let the next connections in
    expect((await fetch(`${otherAdmin}/bans?prefix=192.0.2.0/24`, { method: 'DELETE' })).status).toBe(200);
    expect(await waitUntil(async () => !(await listed(admin, '192.0.2.0/24')), 10_000, 50)).toBe(true);
    expect(await greetings(port, ['192.0.2.5'])).toEqual([expect.stringMatching(/^220 /)]); // the /24's third connect: under the flood limit

    // a ban a worker's policy issues reaches the other node
    await greetings(port, ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4']);
    expect(await waitUntil(() => other.gateway.controls.list().some((b) => b.prefix === '198.51.100.0/24' && b.policy === 'flood'), 10_000, 20)).toBe(true);
    expect((await greetings(other.port, ['198.51.100.9']))[0]).toMatch(/is banned/);
  }, 120_000);
});
