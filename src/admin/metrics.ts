/**
 * Prometheus metrics for `GET /metrics`, built on prom-client with one Registry per gateway
 * (so several gateways in one process, as in tests, never share counters). Every value is
 * read at scrape time from what the gateway already keeps (recorder, sessions, store, relay,
 * registry): the SMTP path does no extra work for metrics.
 */
import type { BanStats } from '../bans/ban-service.js';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PersistStats } from '../history/persister.js';
import type { AuditSeries } from '../series/index.js';
import type { AdminView } from './view.js';
import { journalMetrics } from './journal-metrics.js';
import { registerFrontMetrics } from './front-metrics.js';

type SeriesLabel = 'series' | 'type';

export interface GatewayMetrics {
  readonly registry: Registry;
  /** Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
  /** Stops listening to the gateway's events (a rebound admin listener builds new metrics). */
  close(): void;
}

export function createMetrics(gateway: AdminView): GatewayMetrics {
  const registry = new Registry();
  const registers = [registry];

  new Counter({
    name: 'auditgate_decisions_total',
    help: 'Policy firings by policy, action and mode (mode="shadow" counts what would have fired).',
    labelNames: ['policy', 'action', 'mode'] as const,
    registers,
    collect() {
      this.reset();
      for (const [k, n] of gateway.recorder.decisionCounts) {
        const [policy = '', action = '', mode = ''] = k.split('\t');
        this.inc({ policy, action, mode }, n);
      }
    },
  });

  const relayLatency = new Histogram({
    name: 'auditgate_relay_latency_seconds',
    help: 'Time the backend took to answer each relayed command (MAIL, RCPT, end of DATA).',
    labelNames: ['command'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const onRelayLatency = (command: string, seconds: number): void => relayLatency.observe({ command }, seconds);
  gateway.events.on('relayLatency', onRelayLatency);

  // Verdicts as the engine published them (the console's live decisions), per front: what each
  // front (smtp proxy, milter, policy service) was told other than continue.
  const verdicts = new Counter({
    name: 'auditgate_verdicts_total',
    help: 'Verdicts other than continue the session engine gave, by front (smtp, milter, policy) and action (accept, tarpit, tempfail, reject).',
    labelNames: ['front', 'action'] as const,
    registers,
  });
  const onDecision = (e: { front: string; action: string }): void => verdicts.inc({ front: e.front, action: e.action });
  gateway.events.on('decision', onDecision);

  new Counter({
    name: 'auditgate_auth_total',
    help: 'AUTH attempts by result: ok, failed (the backend refused the credentials), refused (an auth_fail policy, before the backend was asked), tempfail.',
    labelNames: ['result'] as const,
    registers,
    collect() {
      this.reset();
      for (const [result, n] of Object.entries(gateway.front.stats.auth)) this.inc({ result }, n);
    },
  });

  new Gauge({
    name: 'auditgate_sessions_open',
    help: 'SMTP sessions currently open.',
    registers,
    collect() {
      this.set(gateway.front.openSessions());
    },
  });

  new Gauge({
    name: 'auditgate_sessions_tracked',
    help: 'Sessions counted in the per-prefix sessions gauge (clients with a known address).',
    registers,
    collect() {
      this.set(gateway.sessions.total());
    },
  });

  /** One figure per in-process series, read at scrape time (labelled by name, and by type when asked). */
  const perSeries = (Metric: typeof Gauge | typeof Counter, name: string, help: string, value: (s: AuditSeries) => number, typed = false): void => {
    const labels = (s: AuditSeries): Partial<Record<SeriesLabel, string>> => (typed ? { series: s.name, type: s.type } : { series: s.name });
    new Metric<SeriesLabel>({
      name,
      help,
      labelNames: typed ? ['series', 'type'] : ['series'],
      registers,
      collect(this: Gauge<SeriesLabel> | Counter<SeriesLabel>) {
        this.reset();
        // after reset() a gauge's inc() sets it, as a counter's does
        for (const s of gateway.registry.list()) this.inc(labels(s), value(s));
      },
    });
  };
  perSeries(Gauge, 'auditgate_series_keys', 'Keys tracked in process per series (for replicate: cluster series, the local copy).', (s) => s.size(), true);
  perSeries(Gauge, 'auditgate_series_memory_bytes', 'Bytes held in process per series.', (s) => s.memoryBytes());
  perSeries(
    Counter,
    'auditgate_series_evicted_total',
    'Keys evicted per series to stay within max_keys (keys seen once go first; see README, max_keys).',
    (s) => s.evicted(),
  );

  new Counter({
    name: 'auditgate_persist_saves_total',
    help: 'persist: true series state files by result: written, skipped (the series did not change since its last save or load), failed.',
    labelNames: ['result'] as const,
    registers,
    collect() {
      this.reset();
      const st = gateway.persister?.stats();
      if (!st) return;
      for (const result of ['written', 'skipped', 'failed'] as const) this.inc({ result }, st.saves[result]);
    },
  });

  const persistGauge = (name: string, help: string, pick: (last: NonNullable<PersistStats['last']>) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.reset();
        const last = gateway.persister?.stats().last;
        if (last) this.set(pick(last));
      },
    });
  };
  persistGauge('auditgate_persist_last_duration_seconds', 'Wall time of the last save that wrote state files (all of them, fsyncs included).', (l) => l.durationMs / 1000);
  persistGauge('auditgate_persist_last_bytes', 'Bytes written by the last save that wrote state files.', (l) => l.bytes);
  persistGauge('auditgate_persist_last_entries', 'Keys written by the last save that wrote state files.', (l) => l.entries);
  persistGauge(
    'auditgate_persist_max_pause_seconds',
    'Longest synchronous step of the last save that wrote state files: the longest it held the event loop at once.',
    (l) => l.maxPauseMs / 1000,
  );

  new Counter({
    name: 'auditgate_relay_failures_total',
    help: 'Relay transport failures seen by the SMTP front (backend unreachable, timed out, broke).',
    registers,
    collect() {
      this.reset();
      this.inc(gateway.front.stats.relayFailures);
    },
  });

  /** A counter read at scrape time from what the gateway keeps. */
  const counter = (name: string, help: string, value: () => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  };
  const relayCounter = (name: string, help: string, pick: (s: ReturnType<AdminView['relay']['stats']>) => number): void =>
    counter(name, help, () => Math.max(0, pick(gateway.relay.stats())));
  relayCounter('auditgate_relay_messages_total', 'Messages the backend accepted (since the current relay was built).', (s) => s.messages);
  relayCounter('auditgate_relay_bytes_total', 'Bytes of accepted messages (since the current relay was built).', (s) => s.bytes);
  relayCounter('auditgate_relay_transactions_total', 'Relay transactions begun (since the current relay was built).', (s) => s.transactions);
  relayCounter('auditgate_relay_connections_opened_total', 'Backend connections opened (since the current relay was built).', (s) => s.opened);

  new Gauge({
    name: 'auditgate_relay_transactions_active',
    help: 'Relay transactions in progress.',
    registers,
    collect() {
      this.set(gateway.relay.stats().active);
    },
  });

  new Gauge({
    name: 'auditgate_relay_connections_idle',
    help: 'Idle pooled backend connections.',
    registers,
    collect() {
      this.set(gateway.relay.stats().idle);
    },
  });

  new Gauge({
    name: 'auditgate_relay_backend_up',
    help: 'Per relay backend: 1 while it is tried, 0 while it is skipped because it could not be reached (down, in its back-off).',
    labelNames: ['backend'] as const,
    registers,
    collect() {
      this.reset();
      for (const b of gateway.relay.stats().backends) this.set({ backend: b.url }, b.up ? 1 : 0);
    },
  });

  new Counter({
    name: 'auditgate_store_errors_total',
    help: 'Errors the series store reported (Redis failures).',
    registers,
    collect() {
      this.reset();
      this.inc(Math.max(0, gateway.store.status().errors));
    },
  });

  new Counter({
    name: 'auditgate_store_failures_total',
    help: 'Store failures that reached the recorder (on_error: accept / tempfail paths).',
    registers,
    collect() {
      this.reset();
      this.inc(gateway.recorder.storeFailureCount());
    },
  });

  new Counter({
    name: 'auditgate_store_capped_adds_total',
    help: 'Adds the shared store (Redis) did not keep because the window of that series already held max_keys keys (new keys only; prefix counts still include them).',
    registers,
    collect() {
      this.reset();
      this.inc(Math.max(0, gateway.store.status().capped ?? 0));
    },
  });

  new Gauge({
    name: 'auditgate_store_fallback',
    help: '1 while the shared store is unreachable and series count in process (on_error: local), else 0.',
    registers,
    collect() {
      this.set(gateway.store.status().state === 'fallback' ? 1 : 0);
    },
  });

  new Gauge({
    name: 'auditgate_store_pending',
    help: 'Adds waiting to be shipped to the shared store.',
    registers,
    collect() {
      this.set(gateway.store.status().pending);
    },
  });

  const noBans: BanStats = { active: 0, issued: new Map(), lifted: 0, refused: 0, skipped: 0, unshared: 0 };
  const banStats = (): BanStats => gateway.controls?.bans.stats() ?? noBans;
  const banStat = (metric: 'lifted' | 'refused' | 'skipped', name: string, help: string): void => counter(name, help, () => banStats()[metric]);
  new Gauge({
    name: 'auditgate_bans_active',
    help: 'Prefixes banned now (issued by policies or by hand, here or on another node of the cluster).',
    registers,
    collect() {
      this.set(banStats().active);
    },
  });
  new Counter({
    name: 'auditgate_bans_issued_total',
    help: 'Bans this node issued, per policy (policy="(manual)": added through the admin API or CLI).',
    labelNames: ['policy'] as const,
    registers,
    collect() {
      this.reset();
      for (const [policy, n] of banStats().issued) this.inc({ policy }, n);
    },
  });
  banStat('lifted', 'auditgate_bans_lifted_total', 'Bans lifted through this node (admin API or CLI).');
  banStat('refused', 'auditgate_bans_refused_total', 'Connections refused at connect because their client was banned.');
  banStat('skipped', 'auditgate_bans_skipped_total', 'Bans not added because the ban list was full (policies still refuse).');
  new Gauge({
    name: 'auditgate_bans_unshared',
    help: 'Ban changes made on this node that wait for Redis (out of reach); merged back when it returns.',
    registers,
    collect() {
      this.set(banStats().unshared);
    },
  });

  new Counter({
    name: 'auditgate_alerts_total',
    help: 'Alert POSTs per alert by result: sent (2xx), failed (after its retries), dropped (the queue was full, or shutdown).',
    labelNames: ['alert', 'result'] as const,
    registers,
    collect() {
      this.reset();
      for (const [alert, c] of gateway.alerts?.stats() ?? []) for (const result of ['sent', 'failed', 'dropped'] as const) this.inc({ alert, result }, c[result]);
    },
  });

  new Gauge({
    name: 'auditgate_uptime_seconds',
    help: 'Seconds since the gateway started.',
    registers,
    collect() {
      this.set(Math.max(0, (gateway.clock.now() - gateway.startedAt) / 1000));
    },
  });

  journalMetrics(gateway, registers);
  registerFrontMetrics(registry, gateway);
  gateway.registerMetrics?.(registry);

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close: () => {
      gateway.events.off('relayLatency', onRelayLatency);
      gateway.events.off('decision', onDecision);
    },
  };
}
