/**
 * A worker's reports to the primary besides its store calls (one `report` message for many):
 * journal lines, verdicts for the console, firings for alerts, ban requests.
 *
 * Verdicts, firings and ban requests go at the end of the event-loop turn (setImmediate), as
 * the store's batches do, with any journal lines waiting; journal lines alone go once
 * `flushBytes` are waiting or `flushMs` after the first (the journal is not read live: fewer,
 * larger messages). What waits is bounded: a journal line past `maxBytes` is dropped and
 * counted (the primary's journal writer has its own bound and drop counter behind this one).
 */
import type { DecisionEvent } from '../events.js';
import type { WireBanRequest, WireFiring, WorkerMessage, WorkerReport } from './messages.js';

export interface ReporterOptions {
  /** `send` throws when the channel is gone. */
  send: (m: WorkerMessage) => void;
  flushMs?: number;
  flushBytes?: number;
  maxBytes?: number;
}

export class WorkerReporter {
  private journal: string[] = [];
  private journalBytes = 0;
  private decisions: DecisionEvent[] = [];
  private firings: WireFiring[] = [];
  private bans: WireBanRequest[] = [];
  private immediate: NodeJS.Immediate | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly flushMs: number;
  private readonly flushBytes: number;
  private readonly maxBytes: number;
  /** Journal lines dropped here (too many waiting, or the channel was gone). */
  dropped = 0;
  /** Report messages sent. */
  sent = 0;

  constructor(private readonly opts: ReporterOptions) {
    this.flushMs = opts.flushMs ?? 25;
    this.flushBytes = opts.flushBytes ?? 64 * 1024;
    this.maxBytes = opts.maxBytes ?? 8 * 1024 * 1024;
  }

  journalLine(line: string): void {
    if (this.journalBytes + line.length > this.maxBytes) {
      this.dropped++;
      return;
    }
    this.journal.push(line);
    this.journalBytes += line.length;
    if (this.journalBytes >= this.flushBytes) this.soon();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  decision(e: DecisionEvent): void {
    this.decisions.push(e);
    this.soon();
  }

  firing(f: WireFiring): void {
    this.firings.push(f);
    this.soon();
  }

  ban(b: WireBanRequest): void {
    this.bans.push(b);
    this.soon();
  }

  private soon(): void {
    this.immediate ??= setImmediate(() => this.flush());
  }

  /** Sends what waits now. */
  flush(): void {
    if (this.immediate) clearImmediate(this.immediate);
    if (this.timer) clearTimeout(this.timer);
    this.immediate = undefined;
    this.timer = undefined;
    const report: WorkerReport = {};
    if (this.journal.length) report.journal = this.journal;
    if (this.decisions.length) report.decisions = this.decisions;
    if (this.firings.length) report.firings = this.firings;
    if (this.bans.length) report.bans = this.bans;
    const lines = this.journal.length;
    this.journal = [];
    this.journalBytes = 0;
    this.decisions = [];
    this.firings = [];
    this.bans = [];
    if (Object.keys(report).length === 0) return;
    try {
      this.opts.send({ ag: 'report', ...report });
      this.sent++;
    } catch {
      this.dropped += lines; // the primary is gone: the worker exits next
    }
  }
}
