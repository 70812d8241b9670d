/**
 * A batch of journal lines in columns, to hand from the thread that reads and parses a journal
 * (read-worker.ts) to the thread that replays it at a fraction of the cost of parsing: numbers
 * and enumerations in typed arrays (transferred, not copied), every string as the index of a
 * table both sides build in the same order (a journal names the same clients, HELO names,
 * senders and policies over and over; a batch carries only the strings new to the table).
 *
 * What a batch carries is what replay reads: every key of JournalLine but `p` and `k` (the
 * counts the policies saw and the adds made: a replay derives its own). Pure: no I/O, no threads.
 */
import { STAGES, type Stage } from '../config/vocabulary.js';
import { JOURNAL_EVENTS, JOURNAL_FRONTS, JOURNAL_OUTCOMES, JOURNAL_VERSION, type JournalLine } from './line.js';

/** The string keys a batch carries, each as a column of table indexes (-1: absent). */
const STRING_KEYS = ['c', 'a', 'h', 'u', 'm', 'r', 'y'] as const;
type StringKey = (typeof STRING_KEYS)[number];

/** Flags: the keys whose only value is 1. */
const FLAG_D = 1;
const FLAG_L = 2;
const FLAG_X = 4;

/** Beyond this many strings both tables start again (a journal's connection ids never repeat). */
export const MAX_TABLE_STRINGS = 1 << 18;

export interface LineBatch {
  n: number;
  /** Both tables were emptied before this batch's strings were added. */
  reset: boolean;
  /** The strings new to the table, in the order they were added. */
  strings: string[];
  t: Float64Array;
  /** The message size (`b`); NaN when absent. */
  b: Float64Array;
  /** The message's recipients (`n`); NaN when absent. */
  rcpts: Float64Array;
  /** A ban's end (`g`); NaN when absent. */
  g: Float64Array;
  /** Indexes into JOURNAL_EVENTS, JOURNAL_FRONTS; 1 + an index into JOURNAL_OUTCOMES, STAGES (0: absent). */
  e: Uint8Array;
  f: Uint8Array;
  o: Uint8Array;
  s: Uint8Array;
  flags: Uint8Array;
  /** One column of table indexes per string key. */
  ids: Record<StringKey, Int32Array>;
  /** The shadow firings (`w`), rare: [line index, policies]. */
  w: Array<[number, string[]]>;
}

const indexOf = <T>(list: readonly T[]): Map<T, number> => new Map(list.map((x, i) => [x, i]));
const EVENT_INDEX = indexOf(JOURNAL_EVENTS);
const FRONT_INDEX = indexOf(JOURNAL_FRONTS);
const OUTCOME_INDEX = indexOf(JOURNAL_OUTCOMES);
const STAGE_INDEX = indexOf<Stage>(STAGES);

/** The reading side: lines (checked by parseLine) into batches. */
export class BatchEncoder {
  private readonly table = new Map<string, number>();

  constructor(private readonly maxStrings = MAX_TABLE_STRINGS) {}

  encode(lines: readonly JournalLine[]): LineBatch {
    const n = lines.length;
    const reset = this.table.size >= this.maxStrings;
    if (reset) this.table.clear();
    const strings: string[] = [];
    const ids = {} as Record<StringKey, Int32Array>;
    for (const k of STRING_KEYS) ids[k] = new Int32Array(n);
    const batch: LineBatch = { n, reset, strings, t: new Float64Array(n), b: new Float64Array(n), rcpts: new Float64Array(n), g: new Float64Array(n), e: new Uint8Array(n), f: new Uint8Array(n), o: new Uint8Array(n), s: new Uint8Array(n), flags: new Uint8Array(n), ids, w: [] };
    const id = (v: string | undefined): number => {
      if (v === undefined) return -1;
      let i = this.table.get(v);
      if (i === undefined) {
        i = this.table.size;
        this.table.set(v, i);
        strings.push(v);
      }
      return i;
    };
    for (let i = 0; i < n; i++) {
      const l = lines[i]!;
      batch.t[i] = l.t;
      batch.b[i] = l.b ?? NaN;
      batch.rcpts[i] = l.n ?? NaN;
      batch.g[i] = l.g ?? NaN;
      batch.e[i] = EVENT_INDEX.get(l.e)!;
      batch.f[i] = FRONT_INDEX.get(l.f)!;
      batch.o[i] = l.o === undefined ? 0 : OUTCOME_INDEX.get(l.o)! + 1;
      batch.s[i] = l.s === undefined ? 0 : STAGE_INDEX.get(l.s)! + 1;
      batch.flags[i] = (l.d ? FLAG_D : 0) | (l.l ? FLAG_L : 0) | (l.x ? FLAG_X : 0);
      for (const k of STRING_KEYS) ids[k][i] = id(l[k]);
      if (l.w) batch.w.push([i, l.w]);
    }
    return batch;
  }
}

/** The typed arrays of a batch: what postMessage may transfer instead of copying. */
export function batchBuffers(b: LineBatch): ArrayBuffer[] {
  const arrays = [b.t, b.b, b.rcpts, b.g, b.e, b.f, b.o, b.s, b.flags, ...STRING_KEYS.map((k) => b.ids[k])];
  return arrays.map((a) => a.buffer as ArrayBuffer);
}

/** The replaying side: batches back into lines. */
export class BatchDecoder {
  private table: string[] = [];

  decode(batch: LineBatch): JournalLine[] {
    if (batch.reset) this.table = [];
    for (const s of batch.strings) this.table.push(s);
    const table = this.table;
    const { c, a, h, u, m, r, y } = batch.ids;
    const out: JournalLine[] = new Array(batch.n);
    let wi = 0;
    for (let i = 0; i < batch.n; i++) {
      const l: JournalLine = { v: JOURNAL_VERSION, t: batch.t[i]!, e: JOURNAL_EVENTS[batch.e[i]!]!, c: table[c[i]!]!, f: JOURNAL_FRONTS[batch.f[i]!]! };
      if (a[i]! >= 0) l.a = table[a[i]!]!;
      if (h[i]! >= 0) l.h = table[h[i]!]!;
      if (u[i]! >= 0) l.u = table[u[i]!]!;
      if (m[i]! >= 0) l.m = table[m[i]!]!;
      if (r[i]! >= 0) l.r = table[r[i]!]!;
      const b = batch.b[i]!;
      if (b === b) l.b = b; // not NaN
      const rcpts = batch.rcpts[i]!;
      if (rcpts === rcpts) l.n = rcpts;
      const g = batch.g[i]!;
      if (g === g) l.g = g;
      if (batch.s[i]) l.s = STAGES[batch.s[i]! - 1]!;
      const flags = batch.flags[i]!;
      if (flags & FLAG_D) l.d = 1;
      if (flags & FLAG_L) l.l = 1;
      if (batch.o[i]) l.o = JOURNAL_OUTCOMES[batch.o[i]! - 1]!;
      if (y[i]! >= 0) l.y = table[y[i]!]!;
      const w = batch.w[wi];
      if (w !== undefined && w[0] === i) {
        l.w = w[1];
        wi++;
      }
      if (flags & FLAG_X) l.x = 1;
      out[i] = l;
    }
    return out;
  }
}
