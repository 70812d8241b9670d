/** /metrics figures of the series core, persistence and store, on a stub admin view (no sockets). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/admin/metrics.js';
import type { AdminView } from '../../../src/admin/view.js';
import { ManualClock } from '../../../src/series/clock.js';
import { GatewayEvents } from '../../../src/events.js';
import type { StringSeries } from '../../../src/series/index.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { StoreStatus } from '../../../src/store/types.js';
import { SeriesPersister } from '../../../src/history/persister.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function stub(registry: SeriesRegistry, clock: ManualClock, persister: SeriesPersister | undefined, store: Partial<StoreStatus> = {}): AdminView {
  const status: StoreStatus = { kind: 'memory', state: 'ok', since: 0, errors: 0, pending: 0, ...store };
  return {
    registry,
    clock,
    startedAt: clock.now(),
    persister,
    recorder: { decisionCounts: new Map(), storeFailureCount: () => 0 },
    front: { stats: { auth: {}, relayFailures: 0 }, openSessions: () => 0 },
    events: new GatewayEvents(),
    sessions: { total: () => 0 },
    relay: { stats: () => ({ backends: [], messages: 0, bytes: 0, transactions: 0, opened: 0, active: 0, idle: 0 }) },
    store: { status: () => status },
    mtaFronts: () => [],
    alerts: { stats: () => new Map() },
    controls: { bans: { stats: () => ({ active: 0, issued: new Map(), lifted: 0, refused: 0, skipped: 0, unshared: 0 }) } },
  } as unknown as AdminView;
}

describe('metrics: series and persistence', () => {
  it('exposes evictions per series and what the persister did (written, skipped, size, pause)', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 20, 10, 2));
    const registry = new SeriesRegistry(clock);
    const s = registry.define({ name: 'mailfrom', type: 'string', interval: 300, windows: 4, options: { persist: true, max_keys: 10 } }) as StringSeries;
    for (let i = 0; i < 25; i++) s.add(`d${i}.example`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-metrics-'));
    dirs.push(dir);
    const persister = new SeriesPersister({ registry, stateDir: dir, intervalSec: 5, logger: pino({ level: 'silent' }), clock, seriesNames: () => ['mailfrom'] });
    const metrics = createMetrics(stub(registry, clock, persister));

    let text = await metrics.render();
    expect(text).toMatch(/^auditgate_series_evicted_total\{series="mailfrom"\} 15$/m);
    expect(text).toMatch(/^auditgate_persist_last_bytes 0$/m); // nothing saved yet

    await persister.saveAll();
    await persister.saveAll();
    text = await metrics.render();
    const size = fs.statSync(persister.fileFor('mailfrom')).size;
    expect(text).toMatch(/^auditgate_persist_saves_total\{result="written"\} 1$/m);
    expect(text).toMatch(/^auditgate_persist_saves_total\{result="skipped"\} 1$/m);
    expect(text).toMatch(/^auditgate_persist_saves_total\{result="failed"\} 0$/m);
    expect(text).toContain(`auditgate_persist_last_bytes ${size}\n`);
    expect(text).toMatch(/^auditgate_persist_last_entries 10$/m);
    expect(text).toMatch(/^auditgate_persist_last_duration_seconds \d/m);
    expect(text).toMatch(/^auditgate_persist_max_pause_seconds \d/m);
  });

  it('a gateway without persistence shows zeros; adds Redis capped are counted', async () => {
    const clock = new ManualClock(0);
    const text = await createMetrics(stub(new SeriesRegistry(clock), clock, undefined, { capped: 42 })).render();
    expect(text).toMatch(/^auditgate_persist_last_duration_seconds 0$/m);
    expect(text).toMatch(/^auditgate_store_capped_adds_total 42$/m);
    expect(text).not.toMatch(/^auditgate_persist_saves_total\{/m);
  });
});

describe('metrics: event listeners', () => {
  it('a closed metrics object stops counting the gateway events (a rebound admin listener does not count twice)', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 20, 10, 2));
    const view = stub(new SeriesRegistry(clock), clock, undefined);
    const old = createMetrics(view);
    old.close();
    const current = createMetrics(view);
    expect(view.events.listenerCount('decision')).toBe(1);
    expect(view.events.listenerCount('relayLatency')).toBe(1);
    view.events.emit('relayLatency', 'mail', 0.002);
    const text = await current.render();
    expect(text).toMatch(/^auditgate_relay_latency_seconds_count\{command="mail"\} 1$/m);
    expect(await old.render()).not.toMatch(/relay_latency_seconds_count\{command="mail"\} 1/);
  });
});
