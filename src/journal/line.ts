/**
 * The journal's line, declared once: what `journal.ts` writes for every call a front makes to
 * the session engine, and what replay reads back. One compact JSON object per line (JSONL), one
 * file per UTC day (`<journal.dir>/<YYYY-MM-DD>.jsonl`, see history/format.ts).
 *
 *   {"v":1,"t":1767225600123,"e":"rcpt","c":"3f2a9c01b7de","f":"smtp","a":"192.0.2.7","h":"mx.example",
 *    "m":"a@example.org","r":"b@example.net","o":"tempfail","y":"dha","p":{"dha":51},"k":[["rcpts","192.0.2.7"]]}
 *
 * Keys (absent when empty; readers ignore keys they do not know, so later versions may add
 * optional ones — a size, an amount, a ban — without a new version):
 *   v  format version (1)                 t  epoch ms of the event
 *   e  event: a stage (connect … data), reject, a session event (open, close, delivered,
 *      client: a new address by XCLIENT, auth_ok: an AUTH attempt taken back), or an operator's
 *      control: ban, lift (a ban made or lifted by hand; c and f "admin", a the prefix)
 *   c  connection id                      f  front: smtp | milter | policy (admin: a control)
 *   a  client address (normalized)        h  HELO name     u  AUTH user (auth_fail: the one tried)
 *   m  sender ('' for the null sender)    r  recipient
 *   b  the message's size in bytes (data, delivered), when the front knows it (`count: bytes`)
 *   n  data: the message's recipients (`count: rcpts`; Postfix's recipient_count at the policy service)
 *   g  ban: when the ban ends, epoch ms
 *   s  reject: the stage refused          d  1: a reject the engine derived from its own refusal
 *   l  1: the client left before the decision
 *   o  outcome: accept | tarpit | tempfail | reject (absent: continue)
 *   y  the policy that decided            w  shadow (and other unenforced) firings
 *   p  policy → the count it saw          k  the adds: [series, key] or [series, key, amount]
 *   x  1: the store failed and on_error decided
 */
import { STAGES, type Stage } from '../config/vocabulary.js';
import type { FrontKind, SessionEvent } from '../audit/session.js';

export const JOURNAL_VERSION = 1;

/** An operator's change the engine's decisions depend on, made by hand. */
export type ControlEvent = 'ban' | 'lift';
export type JournalEventKind = Stage | SessionEvent | ControlEvent;
export type Outcome = 'accept' | 'tarpit' | 'tempfail' | 'reject';
/** Who a line comes from: a front, or the operator (admin API, CLI). */
export type LineSource = FrontKind | 'admin';
/** The `c` and `f` of a control line. */
export const ADMIN = 'admin';

export interface JournalLine {
  v: number;
  t: number;
  e: JournalEventKind;
  c: string;
  f: LineSource;
  a?: string;
  h?: string;
  u?: string;
  m?: string;
  r?: string;
  b?: number;
  n?: number;
  g?: number;
  s?: Stage;
  d?: 1;
  l?: 1;
  o?: Outcome;
  y?: string;
  w?: string[];
  p?: Record<string, number>;
  k?: Array<[string, string] | [string, string, number]>;
  x?: 1;
}

/** Every value `e`, `f` and `o` may have. */
export const JOURNAL_EVENTS: readonly JournalEventKind[] = [...STAGES, 'open', 'close', 'delivered', 'client', 'auth_ok', 'ban', 'lift'];
export const JOURNAL_FRONTS: readonly LineSource[] = ['smtp', 'milter', 'policy', ADMIN];
export const JOURNAL_OUTCOMES: readonly Outcome[] = ['accept', 'tarpit', 'tempfail', 'reject'];
const EVENTS: ReadonlySet<string> = new Set<string>(JOURNAL_EVENTS);
const STAGE_SET: ReadonlySet<string> = new Set<string>(STAGES);
const FRONTS: ReadonlySet<string> = new Set<string>(JOURNAL_FRONTS);
const OUTCOMES: ReadonlySet<string> = new Set<string>(JOURNAL_OUTCOMES);
const FACTS = ['a', 'h', 'u', 'm', 'r', 'y'] as const;

export function isStage(e: string): e is Stage {
  return STAGE_SET.has(e);
}

export function isControl(e: string): e is ControlEvent {
  return e === 'ban' || e === 'lift';
}

/** Characters a JSON string must escape (and lone surrogates): such strings go through JSON.stringify. */
// eslint-disable-next-line no-control-regex -- JSON escapes control characters: those strings go the slow way
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A number as JSON (JSON has no NaN or Infinity: null, as JSON.stringify writes them). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/** A string as JSON. */
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * A new line with every key there from the start, in formatLine's order (absent: undefined):
 * lines built this way share one shape, so reading them back (formatLine, for every line the
 * gateway journals) is not a megamorphic lookup per key.
 */
export function newLine(t: number, e: JournalEventKind, c: string, f: LineSource, a: string | undefined): JournalLine {
  return { v: JOURNAL_VERSION, t, e, c, f, a, h: undefined, u: undefined, m: undefined, r: undefined, b: undefined, n: undefined, g: undefined, s: undefined, d: undefined, l: undefined, o: undefined, y: undefined, w: undefined, p: undefined, k: undefined, x: undefined };
}

/**
 * The line as JSON and its newline: what JSON.stringify(line) writes (the same keys in the same
 * order), written out by hand because this runs for every event and JSON.stringify's generic
 * path is the larger part of the journal's cost.
 */
export function formatLine(l: JournalLine): string {
  let out = `{"v":${num(l.v)},"t":${num(l.t)},"e":${str(l.e)},"c":${str(l.c)},"f":${str(l.f)}`;
  if (l.a !== undefined) out += `,"a":${str(l.a)}`;
  if (l.h !== undefined) out += `,"h":${str(l.h)}`;
  if (l.u !== undefined) out += `,"u":${str(l.u)}`;
  if (l.m !== undefined) out += `,"m":${str(l.m)}`;
  if (l.r !== undefined) out += `,"r":${str(l.r)}`;
  if (l.b !== undefined) out += `,"b":${num(l.b)}`;
  if (l.n !== undefined) out += `,"n":${num(l.n)}`;
  if (l.g !== undefined) out += `,"g":${num(l.g)}`;
  if (l.s !== undefined) out += `,"s":${str(l.s)}`;
  if (l.d !== undefined) out += `,"d":${l.d}`;
  if (l.l !== undefined) out += `,"l":${l.l}`;
  if (l.o !== undefined) out += `,"o":${str(l.o)}`;
  if (l.y !== undefined) out += `,"y":${str(l.y)}`;
  if (l.w !== undefined) out += `,"w":[${l.w.map(str).join(',')}]`;
  if (l.p !== undefined) {
    let sep = '';
    out += ',"p":{';
    for (const k in l.p) {
      out += `${sep}${str(k)}:${num(l.p[k]!)}`;
      sep = ',';
    }
    out += '}';
  }
  if (l.k !== undefined) {
    out += ',"k":[';
    for (let i = 0; i < l.k.length; i++) {
      const a = l.k[i]!;
      out += `${i ? ',' : ''}[${str(a[0])},${str(a[1])}${a.length === 3 ? `,${num(a[2])}` : ''}]`;
    }
    out += ']';
  }
  if (l.x !== undefined) out += `,"x":${l.x}`;
  return `${out}}\n`;
}

/** A line that is not a journal line, and why. */
export class LineProblem {
  constructor(readonly message: string) {}
}

/**
 * Reads one line (without its newline). Checks what replay relies on; unknown keys are kept
 * and ignored. A line cut short (a writer killed mid-line) says so.
 */
export function parseLine(text: string): JournalLine | LineProblem {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    // every line is one object: a beginning without its end was cut short
    const torn = text.startsWith('{') && !text.endsWith('}');
    return new LineProblem(torn ? 'cut short (a line torn by a crash?)' : 'not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return new LineProblem('not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.v !== JOURNAL_VERSION) return new LineProblem(typeof o.v === 'number' ? `format version ${o.v} is not known (this reader knows ${JOURNAL_VERSION})` : 'no format version "v"');
  if (typeof o.t !== 'number' || !Number.isFinite(o.t)) return new LineProblem('"t" is not a time in ms');
  if (typeof o.e !== 'string' || !EVENTS.has(o.e)) return new LineProblem(`"e" is not a known event: ${JSON.stringify(o.e)}`);
  if (typeof o.c !== 'string' || o.c === '') return new LineProblem('"c" (connection id) is missing');
  if (typeof o.f !== 'string' || !FRONTS.has(o.f)) return new LineProblem(`"f" is not a front: ${JSON.stringify(o.f)}`);
  for (const k of FACTS) if (o[k] !== undefined && typeof o[k] !== 'string') return new LineProblem(`"${k}" is not a string`);
  if (o.b !== undefined && !(typeof o.b === 'number' && Number.isFinite(o.b) && o.b >= 0)) return new LineProblem('"b" is not a size in bytes');
  if (o.n !== undefined && !(typeof o.n === 'number' && Number.isSafeInteger(o.n) && o.n >= 0)) return new LineProblem('"n" is not a number of recipients');
  if (o.s !== undefined && (typeof o.s !== 'string' || !STAGE_SET.has(o.s))) return new LineProblem(`"s" is not a stage: ${JSON.stringify(o.s)}`);
  if (o.o !== undefined && (typeof o.o !== 'string' || !OUTCOMES.has(o.o))) return new LineProblem(`"o" is not an outcome: ${JSON.stringify(o.o)}`);
  if (o.w !== undefined && !(Array.isArray(o.w) && o.w.every((x) => typeof x === 'string'))) return new LineProblem('"w" is not a list of policy names');
  if (o.e === 'reject' && o.s === undefined) return new LineProblem('a reject event without "s" (the stage refused)');
  if ((o.f === ADMIN) !== isControl(o.e)) return new LineProblem(o.f === ADMIN ? `"${o.e}" is not an operator's control` : `a ${o.e} line not from "admin"`);
  if (isControl(o.e) && typeof o.a !== 'string') return new LineProblem(`a ${o.e} line without "a" (the prefix)`);
  if (o.g !== undefined && !(typeof o.g === 'number' && Number.isFinite(o.g))) return new LineProblem('"g" is not a time in ms');
  if (o.e === 'ban' && o.g === undefined) return new LineProblem('a ban line without "g" (when it ends)');
  return o as unknown as JournalLine;
}
