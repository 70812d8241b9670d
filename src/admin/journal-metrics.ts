/** /metrics figures of the journal (journal.dir): lines written, dropped, failed writes, buffered bytes. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { JournalStats } from '../journal/writer.js';
import type { AdminView } from './view.js';

/** Counter name → help and the JournalStats field it shows (totals kept by the writer). */
const COUNTERS: ReadonlyArray<[string, string, 'lines' | 'dropped' | 'writeErrors']> = [
  ['auditgate_journal_lines_total', 'Journal lines written to journal.dir (one per stage or session event).', 'lines'],
  [
    'auditgate_journal_dropped_lines_total',
    'Journal lines dropped because the buffer was full (the disk slower than the mail) or their write failed; mail is never held up for the journal.',
    'dropped',
  ],
  ['auditgate_journal_write_errors_total', 'Journal writes (or day-file opens) that failed.', 'writeErrors'],
];

export function journalMetrics(gateway: AdminView, registers: Registry[]): void {
  const stats = (): JournalStats | undefined => gateway.journalStats?.();
  for (const [name, help, field] of COUNTERS) {
    new Counter({ name, help, registers, collect: collectTotal(stats, field) });
  }
  new Gauge({
    name: 'auditgate_journal_buffered_bytes',
    help: 'Journal bytes waiting in memory to be written (the write in flight included).',
    registers,
    collect() {
      this.set(stats()?.bufferedBytes ?? 0);
    },
  });
}

/** A counter's collect: the writer's running total (none while the config has no journal). */
function collectTotal(stats: () => JournalStats | undefined, field: 'lines' | 'dropped' | 'writeErrors') {
  return function (this: Counter) {
    this.reset();
    const st = stats();
    if (st) this.inc(st[field]);
  };
}
