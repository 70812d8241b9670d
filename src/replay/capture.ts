/** The journal line an engine writes for the event being fed: who decided it, what fired in shadow. */
import type { JournalLine } from '../journal/line.js';

export class LineCapture {
  private want: { c: string; e: string } | undefined;
  private got: JournalLine | undefined;

  /** From now on, keep the first line of event `e` of session `cid`. */
  expect(cid: string, e: string): void {
    this.want = { c: cid, e };
    this.got = undefined;
  }

  /** Every line the engine writes goes past here. */
  offer(l: JournalLine): void {
    const w = this.want;
    if (w && this.got === undefined && l.c === w.c && l.e === w.e) this.got = l;
  }

  /** The line kept, if the engine wrote it; stops looking. */
  take(): JournalLine | undefined {
    const g = this.got;
    this.want = undefined;
    this.got = undefined;
    return g;
  }
}
