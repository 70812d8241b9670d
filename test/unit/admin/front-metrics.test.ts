/** /metrics of the MTA fronts: one series per configured front, read from its counters at scrape time. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerFrontMetrics } from '../../../src/admin/front-metrics.js';
import type { MtaFrontKind, MtaFrontStats, MtaListener } from '../../../src/mta/listener.js';

const front = (kind: MtaFrontKind, stats: MtaFrontStats) => ({ kind, stats }) as unknown as MtaListener;

describe('front metrics', () => {
  it('shows each front by its label, as its counters are at each scrape; absent fronts have no series', async () => {
    const milter: MtaFrontStats = { connections: 7, open: 2, refused: 1, protocolErrors: 3, idleTimeouts: 4, holding: 1, events: 9 };
    const policy: MtaFrontStats = { connections: 5, open: 5, refused: 0, protocolErrors: 0, idleTimeouts: 0, holding: 0, events: 60 };
    const fronts: MtaListener[] = [front('milter', milter)];
    const registry = new Registry();
    registerFrontMetrics(registry, { mtaFronts: () => fronts });

    let text = await registry.metrics();
    expect(text).toMatch(/^auditgate_front_connections_open\{front="milter"\} 2$/m);
    expect(text).toMatch(/^auditgate_front_connections_total\{front="milter"\} 7$/m);
    expect(text).toMatch(/^auditgate_front_connections_refused_total\{front="milter"\} 1$/m);
    expect(text).toMatch(/^auditgate_front_protocol_errors_total\{front="milter"\} 3$/m);
    expect(text).toMatch(/^auditgate_front_idle_timeouts_total\{front="milter"\} 4$/m);
    expect(text).toMatch(/^auditgate_front_tarpit_holding\{front="milter"\} 1$/m);
    expect(text).toMatch(/^auditgate_front_requests_total\{front="milter"\} 9$/m);
    expect(text).not.toContain('front="policy"');

    // the next scrape reads the counters again (a gauge going down included)
    milter.open = 0;
    milter.holding = 0;
    milter.events = 10;
    fronts.push(front('policy', policy));
    text = await registry.metrics();
    expect(text).toMatch(/^auditgate_front_connections_open\{front="milter"\} 0$/m);
    expect(text).toMatch(/^auditgate_front_tarpit_holding\{front="milter"\} 0$/m);
    expect(text).toMatch(/^auditgate_front_requests_total\{front="milter"\} 10$/m);
    expect(text).toMatch(/^auditgate_front_connections_open\{front="policy"\} 5$/m);
    expect(text).toMatch(/^auditgate_front_requests_total\{front="policy"\} 60$/m);
  });
});
