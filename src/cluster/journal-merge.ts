/**
 * The primary's merge of its workers' journal lines into its one journal writer, in time order.
 *
 * Each worker sends its lines in batches (reporter.ts), so lines of two workers arrive out of
 * order by up to a batch period; replay reads a journal in file order, and two connections from
 * one client served by two workers must be replayed in the order they happened. Lines are held
 * `holdMs` after their time (`t`, the workers' clocks: one machine) and written sorted by it.
 * A line later than that is written at once (replay notes it as out of order). Bounded: past
 * `maxHeld` lines held, everything held is written now.
 */
import type { Clock } from '../series/clock.js';

const T = /^\{"v":\d+,"t":(\d+),/;

interface Held {
  t: number;
  line: string;
}

export interface JournalMergeOptions {
  clock: Clock;
  /** Where merged lines go (the journal writer's append). */
  write: (line: string) => void;
  holdMs?: number;
  maxHeld?: number;
}

export class JournalMerge {
  private held: Held[] = [];
  private timer: NodeJS.Timeout | undefined;
  readonly holdMs: number;
  private readonly maxHeld: number;

  constructor(private readonly opts: JournalMergeOptions) {
    this.holdMs = opts.holdMs ?? 1000;
    this.maxHeld = opts.maxHeld ?? 100_000;
  }

  /** Lines from one worker (formatted journal lines, each ending in a newline). */
  add(lines: readonly unknown[]): void {
    const now = this.opts.clock.now();
    for (const line of lines) {
      if (typeof line !== 'string') continue;
      const t = Number(T.exec(line)?.[1] ?? now);
      this.held.push({ t, line });
    }
    if (this.held.length > this.maxHeld) this.flush();
    else if (this.held.length > 0 && !this.timer) {
      this.timer = setInterval(() => this.tick(), Math.max(10, this.holdMs / 2));
      this.timer.unref();
    }
  }

  /** Writes the lines held long enough (time ≤ now − holdMs), oldest first. */
  tick(): void {
    const cutoff = this.opts.clock.now() - this.holdMs;
    this.held.sort((a, b) => a.t - b.t);
    let n = 0;
    while (n < this.held.length && this.held[n]!.t <= cutoff) n++;
    if (n === 0) return;
    const out = this.held.slice(0, n);
    this.held = this.held.slice(n);
    for (const h of out) this.opts.write(h.line);
    if (this.held.length === 0) this.stop();
  }

  /** Writes everything held, oldest first (at close, or past the bound). */
  flush(): void {
    this.held.sort((a, b) => a.t - b.t);
    const out = this.held;
    this.held = [];
    this.stop();
    for (const h of out) this.opts.write(h.line);
  }

  get size(): number {
    return this.held.length;
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
