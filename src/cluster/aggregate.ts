/**
 * The whole gateway as the admin API and /metrics see it in a multi-process gateway: the
 * workers' latest reports summed (decisions, recent firings, front and relay figures), and the
 * per-worker metrics (sessions, CPU, IPC batches and round trips, restarts).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { FiredRecord } from '../audit/recorder.js';
import type { ProxyStats } from '../smtp/proxy-session.js';
import type { RelayBackendStats, RelayStats } from '../smtp/relay/types.js';
import type { MtaFrontKind, MtaFrontStats } from '../mta/listener.js';
import type { WorkerStats } from './messages.js';

/** The latest report of each live worker, by worker index ("1" … "N"). */
export type Reports = ReadonlyMap<string, WorkerStats>;

const RELAY_FIGURES = ['idle', 'active', 'opened', 'reused', 'transactions', 'messages', 'bytes', 'failures'] as const;

export function sumDecisions(reports: Reports): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of reports.values()) for (const [k, n] of r.decisions) out.set(k, (out.get(k) ?? 0) + n);
  return out;
}

export function recentFirings(reports: Reports, limit = 50): FiredRecord[] {
  const all = [...reports.values()].flatMap((r) => r.recent);
  return all.sort((a, b) => b.at - a.at).slice(0, limit);
}

export function sumFront(reports: Reports): ProxyStats {
  const out: ProxyStats = { relayFailures: 0, auth: { ok: 0, failed: 0, refused: 0, tempfail: 0 } };
  for (const r of reports.values()) {
    out.relayFailures += r.front.relayFailures;
    for (const k of Object.keys(out.auth) as Array<keyof ProxyStats['auth']>) out.auth[k] += r.front.auth[k];
  }
  return out;
}

/** The workers' relay figures summed; a backend is up when every worker finds it up. */
export function sumRelay(reports: Reports, kind: RelayStats['kind']): RelayStats {
  const out: RelayStats = { kind, backends: [], idle: 0, active: 0, opened: 0, reused: 0, transactions: 0, messages: 0, bytes: 0, failures: 0 };
  const backends = new Map<string, RelayBackendStats>();
  for (const r of reports.values()) {
    for (const k of RELAY_FIGURES) out[k] += r.relay[k];
    for (const b of r.relay.backends) {
      const seen = backends.get(b.url);
      if (seen) backends.set(b.url, { url: b.url, up: seen.up && b.up, idle: seen.idle + b.idle });
      else backends.set(b.url, { ...b });
    }
  }
  out.backends = [...backends.values()];
  return out;
}

/** The workers' milter and policy-service figures, summed per front. */
export function sumMta(reports: Reports): Array<{ kind: MtaFrontKind; stats: MtaFrontStats }> {
  const out = new Map<MtaFrontKind, MtaFrontStats>();
  for (const r of reports.values()) {
    for (const { kind, stats } of r.mta) {
      const sum = out.get(kind);
      if (!sum) out.set(kind, { ...stats });
      else for (const k of Object.keys(sum) as Array<keyof MtaFrontStats>) sum[k] += stats[k];
    }
  }
  return [...out].map(([kind, stats]) => ({ kind, stats }));
}

export function openSessions(reports: Reports): number {
  let n = 0;
  for (const r of reports.values()) n += r.open;
  return n;
}

/** Per-worker figures on the admin registry (labelled worker="1" … "N"). */
export function registerWorkerMetrics(registry: Registry, reports: () => Reports, restarts: () => number): void {
  const registers = [registry];
  const perWorker = (Metric: typeof Gauge | typeof Counter, name: string, help: string, value: (r: WorkerStats) => number): void => {
    new Metric<'worker'>({
      name,
      help,
      labelNames: ['worker'],
      registers,
      collect(this: Gauge<'worker'> | Counter<'worker'>) {
        this.reset();
        for (const [worker, r] of reports()) this.inc({ worker }, value(r));
      },
    });
  };
  perWorker(Gauge, 'auditgate_worker_sessions_open', 'SMTP sessions open per worker process.', (r) => r.open);
  perWorker(Counter, 'auditgate_worker_cpu_seconds_total', 'CPU time (user + system) per worker process since it started.', (r) => (r.cpu.user + r.cpu.system) / 1e6);
  perWorker(Counter, 'auditgate_worker_ipc_batches_total', 'Batches of series operations a worker sent to the primary.', (r) => r.batches);
  perWorker(Counter, 'auditgate_worker_ipc_round_trips_total', 'Batches a worker waited on for an answer (counts, gauge): its round trips to the primary.', (r) => r.roundTrips);
  perWorker(Counter, 'auditgate_worker_relay_messages_total', 'Messages the backend accepted, per worker process.', (r) => r.relay.messages);
  new Counter({
    name: 'auditgate_worker_restarts_total',
    help: 'Worker processes that died and were restarted.',
    registers,
    collect() {
      this.reset();
      this.inc(restarts());
    },
  });
  new Gauge({
    name: 'auditgate_primary_cpu_seconds',
    help: 'CPU time (user + system) of the primary process since it started.',
    registers,
    collect() {
      const u = process.cpuUsage();
      this.set((u.user + u.system) / 1e6);
    },
  });
}
