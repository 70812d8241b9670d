/**
 * The journal's side of the session engine: every call a front makes (a stage event with the
 * facts it was decided on, its verdict, the adds and counts the recorder made and saw; a reject
 * event; a session opening, closing, delivering, changing address or taking an AUTH attempt back)
 * becomes one JournalLine (line.ts) handed to a sink: the day-file writer in the gateway
 * (writer.ts), replay's collector when a journal is replayed. No sink: nothing is built.
 * Bans made or lifted by hand are lines too (controlLine): replay applies them where they were.
 */
import type { Clock } from '../series/clock.js';
import type { EventContext } from '../policy/evaluate.js';
import type { StageResult } from '../audit/recorder.js';
import type { EngineJournal, Session, SessionEvent, Verdict } from '../audit/session.js';
import type { BanChange } from '../bans/ban-list.js';
import { ADMIN, newLine, type JournalEventKind, type JournalLine } from './line.js';

export type LineSink = (line: JournalLine) => void;

export class Journal implements EngineJournal {
  /** `lean`: decisions only, without the facts, counts and adds (replay's own record of a run). */
  constructor(
    private readonly clock: Clock,
    private sink: LineSink | undefined = undefined,
    private readonly lean = false,
  ) {}

  /** Where lines go from now on; undefined turns the journal off. */
  setSink(sink: LineSink | undefined): void {
    this.sink = sink;
  }

  get enabled(): boolean {
    return this.sink !== undefined;
  }

  stage(s: Session, ctx: EventContext, verdict: Verdict, res?: StageResult): void {
    const sink = this.sink;
    if (!sink) return;
    const line = this.line(s, ctx.stage, res?.at);
    if (!this.lean) facts(line, ctx);
    if (s.closed && verdict.action === 'continue' && res) {
      // the client left while the event was decided: the engine answered nobody
      line.l = 1;
      decidedBy(line, res);
    } else if (verdict.action !== 'continue') {
      line.o = verdict.action;
      const policy = verdict.action === 'accept' ? res?.fired?.policy.name : verdict.policy;
      if (policy !== undefined) line.y = policy;
    }
    if (res) recorded(line, res, this.lean);
    sink(line);
  }

  reject(s: Session, of: EventContext, res: StageResult | undefined, derived: boolean): void {
    const sink = this.sink;
    if (!sink) return;
    const line = this.line(s, 'reject', res?.at);
    if (!this.lean) facts(line, of);
    line.s = of.stage;
    if (derived) line.d = 1;
    if (res) {
      decidedBy(line, res);
      recorded(line, res, this.lean);
    }
    sink(line);
  }

  /** A ban made or lifted by hand. */
  control(change: BanChange): void {
    this.sink?.(controlLine(change, this.clock.now()));
  }

  session(s: Session, event: SessionEvent): void {
    const sink = this.sink;
    if (!sink) return;
    const line = this.line(s, event, undefined);
    if (event === 'delivered' && s.messageSize !== undefined) line.b = s.messageSize;
    sink(line);
  }

  private line(s: Session, e: JournalEventKind, at: number | undefined): JournalLine {
    return newLine(at ?? this.clock.now(), e, s.cid, s.front, s.client?.text);
  }
}

/** A ban made (`g`: its end) or lifted by hand, at `t`. */
export function controlLine(change: BanChange, t: number): JournalLine {
  if ('lift' in change) return newLine(t, 'lift', ADMIN, ADMIN, change.lift);
  const line = newLine(t, 'ban', ADMIN, ADMIN, change.ban.prefix);
  line.g = change.ban.until;
  return line;
}

/** The facts an event was decided on (what replay sets on its session before asking again). */
function facts(line: JournalLine, ctx: EventContext): void {
  if (ctx.helo !== undefined) line.h = ctx.helo;
  if (ctx.auth_user !== undefined) line.u = ctx.auth_user;
  if (ctx.mail_from !== undefined) line.m = ctx.mail_from;
  if (ctx.rcpt !== undefined) line.r = ctx.rcpt;
  if (ctx.bytes !== undefined) line.b = ctx.bytes;
  if (ctx.rcpts !== undefined) line.n = ctx.rcpts;
}

/** The recorder's own decision (a reject event's policies, or an event nobody was answered for). */
function decidedBy(line: JournalLine, res: StageResult): void {
  if (res.verdict !== 'continue') line.o = res.verdict;
  if (res.fired) line.y = res.fired.policy.name;
}

/** What the recorder did: shadow firings, the counts the policies saw, the adds, a store failure (`lean`: the firings only). */
function recorded(line: JournalLine, res: StageResult, lean: boolean): void {
  if (res.shadow.length) line.w = res.shadow.map((f) => f.policy.name);
  if (lean) return;
  const seen = res.seen;
  if (seen) {
    let p: Record<string, number> | undefined;
    for (let i = 0; i < seen.items.length; i++) {
      const n = seen.counts[i];
      if (n === undefined) continue;
      (p ??= {})[seen.items[i]!.policy.name] = n;
    }
    if (p) line.p = p;
  }
  const adds = res.adds;
  if (adds?.length) line.k = adds.map((op) => (op.count === 1 ? [op.series, op.key] : [op.series, op.key, op.count]));
  if (res.storeFailure) line.x = 1;
}
