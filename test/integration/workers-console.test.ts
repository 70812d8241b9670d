/**
 * The console's live decisions with server.workers: 2: the verdicts of both workers' engines
 * reach the primary's stream (`GET /events/decisions`) and /metrics, IPv4 and IPv6 clients
 * through PROXY headers, connections handed to the workers in turn.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { reader } from '../helpers/stream.js';
import { waitFor } from '../helpers/wait.js';
import { burst, count, killGateways, start } from '../helpers/workers.js';

afterEach(() => killGateways());

describe('server.workers: 2, console', () => {
  it("streams every worker's decisions as they happen", async () => {
    const { port, admin } = await start({
      workers: 2,
      env: { NODE_CLUSTER_SCHED_POLICY: 'rr' },
      policies: `  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: 1, action: tempfail }
  - { name: per-64, on: connect, series: conn6, mask: 64, windows: [0, 1], above: 1, action: reject }`,
    });
    const live = reader(await fetch(`${admin}/events/decisions`));
    try {
      await waitFor(() => live.text().includes('retry: 2000'), 10_000);
      expect(count(await burst(port, 4, () => '203.0.113.8'), 421)).toBe(3);
      expect(count(await burst(port, 4, (i) => `2001:db8:5:6::${i + 1}`), 554)).toBe(3);
      const decisions = () =>
        live
          .text()
          .split('\n')
          .filter((l) => l.startsWith('data: {"at"'))
          .map((l) => JSON.parse(l.slice(6)) as { client: string; policy: string; action: string; front: string; reply: string });
      await waitFor(() => decisions().length >= 6, 10_000);
      const seen = decisions().map((d) => `${d.front} ${d.policy} ${d.action} ${d.client}`);
      expect(seen.filter((d) => d === 'smtp per-ip tempfail 203.0.113.8')).toHaveLength(3);
      expect(seen.filter((d) => d.startsWith('smtp per-64 reject 2001:db8:5:6::'))).toHaveLength(3);
      expect(decisions()[0]!.reply).toMatch(/^421 4\.7\.0 /);
    } finally {
      live.stop();
    }
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    const perWorker = [...metrics.matchAll(/^auditgate_worker_ipc_round_trips_total\{worker="(\d)"\} (\d+)$/gm)];
    expect(perWorker.map((m) => Number(m[2]) > 0)).toEqual([true, true]); // both workers decided some
  }, 90_000);
});
