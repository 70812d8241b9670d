import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import * as agg from '../../../src/cluster/aggregate.js';
import type { WorkerStats } from '../../../src/cluster/messages.js';

function report(n: number, over: Partial<WorkerStats> = {}): WorkerStats {
  return {
    pid: 100 + n,
    open: n,
    front: { relayFailures: n, auth: { ok: n, failed: 0, refused: 2 * n, tempfail: 0 } },
    relay: { kind: 'smtp', backends: [{ url: 'smtp://a:25', up: true, idle: n }], idle: n, active: 0, opened: n, reused: 0, transactions: 3 * n, messages: 3 * n, bytes: 100 * n, failures: 0 },
    decisions: [[`per-ip\ttempfail\tenforce`, n]],
    recent: [{ at: 1000 + n, cid: `c${n}`, client: '192.0.2.1', stage: 'connect', policy: 'per-ip', action: 'tempfail', mode: 'enforce' }],
    storeFailures: 0,
    batches: 10 * n,
    roundTrips: 5 * n,
    cpu: { user: 1_000_000 * n, system: 0 },
    latencies: [],
    bansRefused: n,
    journalDropped: 0,
    mta: [{ kind: 'milter', stats: { connections: n, open: n, refused: 0, protocolErrors: 0, idleTimeouts: 0, holding: 0, events: 2 * n } }],
    ...over,
  };
}

describe('the whole gateway from worker reports', () => {
  const reports = new Map([
    ['1', report(1)],
    ['2', report(2, { relay: { ...report(2).relay, backends: [{ url: 'smtp://a:25', up: false, idle: 0 }, { url: 'smtp://b:25', up: true, idle: 1 }] } })],
  ]);

  it('sums decisions, front, relay and sessions; newest firings first; a backend is up when every worker finds it up', () => {
    expect([...agg.sumDecisions(reports)]).toEqual([[`per-ip\ttempfail\tenforce`, 3]]);
    expect(agg.sumFront(reports)).toEqual({ relayFailures: 3, auth: { ok: 3, failed: 0, refused: 6, tempfail: 0 } });
    const relay = agg.sumRelay(reports, 'smtp');
    expect(relay).toMatchObject({ messages: 9, transactions: 9, bytes: 300, idle: 3, opened: 3 });
    expect(relay.backends).toEqual([
      { url: 'smtp://a:25', up: false, idle: 1 },
      { url: 'smtp://b:25', up: true, idle: 1 },
    ]);
    expect(agg.openSessions(reports)).toBe(3);
    expect(agg.recentFirings(reports, 1).map((f) => f.cid)).toEqual(['c2']);
  });

  it("sums the workers' milter and policy-service figures per front", () => {
    const withPolicy = new Map([...reports, ['3', report(3, { mta: [{ kind: 'policy', stats: { connections: 7, open: 1, refused: 0, protocolErrors: 1, idleTimeouts: 0, holding: 0, events: 9 } }] })]]);
    expect(agg.sumMta(withPolicy)).toEqual([
      { kind: 'milter', stats: { connections: 3, open: 3, refused: 0, protocolErrors: 0, idleTimeouts: 0, holding: 0, events: 6 } },
      { kind: 'policy', stats: { connections: 7, open: 1, refused: 0, protocolErrors: 1, idleTimeouts: 0, holding: 0, events: 9 } },
    ]);
    expect(reports.get('1')!.mta[0]!.stats.connections).toBe(1); // the sum is a copy: the reports are untouched
  });

  it('labels per-worker metrics by worker', async () => {
    const registry = new Registry();
    agg.registerWorkerMetrics(registry, () => reports, () => 4);
    const text = await registry.metrics();
    expect(text).toContain('auditgate_worker_ipc_round_trips_total{worker="2"} 10');
    expect(text).toContain('auditgate_worker_cpu_seconds_total{worker="1"} 1');
    expect(text).toContain('auditgate_worker_sessions_open{worker="2"} 2');
    expect(text).toContain('auditgate_worker_restarts_total 4');
  });
});
