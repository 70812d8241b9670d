/** The journal line an engine writes for the event being fed: who decided it, what fired in shadow. */
import type { JournalLine } from '../journal/line.js';

export class LineCapture {
  /** The session and event looked for (undefined: not looking). */
  private c: string | undefined;
  private e: string | undefined;
  private got: JournalLine | undefined;

  /** From now on, keep the first line of event `e` of session `cid`. */
  expect(cid: string, e: string): void {
    this.c = cid;
    this.e = e;
    this.got = undefined;
  }

  /** Every line the engine writes goes past here. */
  offer(l: JournalLine): void {
    if (this.got === undefined && this.c !== undefined && l.c === this.c && l.e === this.e) this.got = l;
  }

  /** The line kept, if the engine wrote it; stops looking. */
  take(): JournalLine | undefined {
    const g = this.got;
    this.c = undefined;
    this.e = undefined;
    this.got = undefined;
    return g;
  }
}
