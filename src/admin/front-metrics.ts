/**
 * /metrics for the fronts an MTA calls (milter, policy service), labelled front="milter|policy",
 * read at scrape time from each front's counters. Absent fronts have no series.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { MtaFrontStats } from '../mta/listener.js';
import type { AdminView } from './view.js';

type StatOf = (s: MtaFrontStats) => number;

export function registerFrontMetrics(registry: Registry, gateway: Pick<AdminView, 'mtaFronts'>): void {
  const registers = [registry];
  const metric = (Metric: typeof Gauge | typeof Counter, name: string, help: string, pick: StatOf): void => {
    new Metric<'front'>({
      name,
      help,
      labelNames: ['front'],
      registers,
      collect(this: Gauge<'front'> | Counter<'front'>) {
        this.reset();
        // after reset() a gauge's inc() sets it, as a counter's does
        for (const f of gateway.mtaFronts()) this.inc({ front: f.kind }, pick(f.stats));
      },
    });
  };
  metric(Gauge, 'auditgate_front_connections_open', 'MTA connections open now, per front.', (s) => s.open);
  metric(Counter, 'auditgate_front_connections_total', 'MTA connections accepted, per front.', (s) => s.connections);
  metric(Counter, 'auditgate_front_connections_refused_total', 'MTA connections closed at once because the front had max_connections open.', (s) => s.refused);
  metric(Counter, 'auditgate_front_protocol_errors_total', 'MTA connections closed for a malformed milter packet or policy request.', (s) => s.protocolErrors);
  metric(Counter, 'auditgate_front_idle_timeouts_total', 'MTA connections closed after idle_timeout of silence.', (s) => s.idleTimeouts);
  metric(Gauge, 'auditgate_front_tarpit_holding', 'Answers a tarpit is holding back now, per front.', (s) => s.holding);
  metric(Counter, 'auditgate_front_requests_total', 'Milter: sessions begun (CONNECT); policy service: requests answered.', (s) => s.events);
}
