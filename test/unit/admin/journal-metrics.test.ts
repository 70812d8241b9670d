/** /metrics figures of the journal, on a stub admin view. */
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/admin/metrics.js';
import type { AdminView } from '../../../src/admin/view.js';
import { GatewayEvents } from '../../../src/events.js';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { JournalStats } from '../../../src/journal/writer.js';

function stub(journal: JournalStats | undefined): AdminView {
  const clock = new ManualClock(0);
  return {
    registry: new SeriesRegistry(clock),
    clock,
    startedAt: 0,
    persister: undefined,
    recorder: { decisionCounts: new Map(), storeFailureCount: () => 0 },
    front: { stats: { auth: {}, relayFailures: 0 }, openSessions: () => 0 },
    events: new GatewayEvents(),
    sessions: { total: () => 0 },
    relay: { stats: () => ({ messages: 0, bytes: 0, transactions: 0, opened: 0, active: 0, idle: 0, backends: [] }) },
    store: { status: () => ({ kind: 'memory', state: 'ok', since: 0, errors: 0, pending: 0 }) },
    journalStats: () => journal,
    mtaFronts: () => [],
    alerts: { stats: () => new Map() },
    controls: { bans: { stats: () => ({ active: 0, issued: new Map(), lifted: 0, refused: 0, skipped: 0, unshared: 0 }) } },
  } as unknown as AdminView;
}

describe('metrics: journal', () => {
  it('lines written, dropped, failed writes and buffered bytes', async () => {
    const text = await createMetrics(stub({ lines: 1200, dropped: 7, writeErrors: 2, writes: 30, bufferedBytes: 4096 })).render();
    expect(text).toMatch(/^auditgate_journal_lines_total 1200$/m);
    expect(text).toMatch(/^auditgate_journal_dropped_lines_total 7$/m);
    expect(text).toMatch(/^auditgate_journal_write_errors_total 2$/m);
    expect(text).toMatch(/^auditgate_journal_buffered_bytes 4096$/m);
  });

  it('no journal: zeros', async () => {
    const text = await createMetrics(stub(undefined)).render();
    expect(text).toMatch(/^auditgate_journal_dropped_lines_total 0$/m);
    expect(text).toMatch(/^auditgate_journal_buffered_bytes 0$/m);
  });
});
