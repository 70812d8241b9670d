/** /metrics figures of the journal (journal.dir): lines written, dropped, failed writes, buffered bytes. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { JournalStats } from '../journal/writer.js';
import type { AdminView } from './view.js';

export function journalMetrics(gateway: AdminView, registers: Registry[]): void {
  const counter = (name: string, help: string, pick: (s: JournalStats) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        const st = gateway.journalStats?.();
        if (st) this.inc(pick(st));
      },
    });
  };
  counter('auditgate_journal_lines_total', 'Journal lines written to journal.dir (one per stage or session event).', (s) => s.lines);
  counter(
    'auditgate_journal_dropped_lines_total',
    'Journal lines dropped because the buffer was full (the disk slower than the mail) or their write failed; mail is never held up for the journal.',
    (s) => s.dropped,
  );
  counter('auditgate_journal_write_errors_total', 'Journal writes (or day-file opens) that failed.', (s) => s.writeErrors);
  new Gauge({
    name: 'auditgate_journal_buffered_bytes',
    help: 'Journal bytes waiting in memory to be written (the write in flight included).',
    registers,
    collect() {
      this.set(gateway.journalStats?.()?.bufferedBytes ?? 0);
    },
  });
}
