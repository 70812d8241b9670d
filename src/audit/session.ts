/**
 * The session engine: one client's session as plain data, and the one entry point every front
 * calls for a stage event. A front (SMTP proxy, milter, policy service) knows its protocol and
 * nothing about series or policies: it parses the client's address once at its edge, fills the
 * session as the protocol tells it (HELO name, sender, recipient, AUTH user), asks `stage()` and
 * turns the verdict into its protocol's answer.
 *
 *   stage event → recorder (record rules, monitors, counts, policies) → verdict:
 *     continue | accept | tarpit (delay, then go on) | tempfail | reject (reply from the one
 *     table, and whether the connection closes)
 *
 * A refusal records the `reject` event itself. An `accept` at connect trusts the session: later
 * stages record but skip policies.
 *
 * Operator controls (controls.ts): a banned client is refused at its connect stage before any
 * policy runs (421 with the time left; its connect and reject events are still counted); a
 * client in a protected network is never refused, tarpitted or banned (its events are counted,
 * the policies that would have refused it are logged as mode "protected"); an enforcing policy
 * with `ban` that refuses or slows a client bans its prefix.
 */
import type { Logger } from 'pino';
import type { Stage } from '../config/vocabulary.js';
import type { ClientAddress } from '../series/address.js';
import type { EventContext } from '../policy/evaluate.js';
import type { Recorder, StageOptions, StageResult } from './recorder.js';
import type { SessionGauge } from './sessions.js';
import type { Controls } from './controls.js';
import type { DecisionEvent, GatewayEvents } from '../events.js';
import { banReply, refusalReply, STORE_FAILURE_REPLY, type Reply } from './replies.js';
import { after, type Maybe } from '../maybe.js';

export type FrontKind = 'smtp' | 'milter' | 'policy';

/** One client's session, as plain data. Fronts write the protocol facts; the engine the rest. */
export interface Session {
  readonly cid: string;
  readonly front: FrontKind;
  /** `cid@hostname`, named in every refusal. */
  readonly tag: string;
  /** Parsed once at the front's edge; undefined when the client has no address we can count. */
  client: ClientAddress | undefined;
  helo?: string;
  /** The sender of the current transaction, lower-cased ('' for the null sender). */
  mailFrom?: string;
  mailFromDomain?: string;
  /** The recipient of the rcpt event being decided, lower-cased. */
  rcpt?: string;
  rcptDomain?: string;
  /** Recipients accepted in the current transaction. */
  rcpts: string[];
  /**
   * Size in bytes of the current transaction's message, once it has been received (fronts fill
   * it when they know it: the SMTP proxy when the backend accepted it, the policy service from
   * `size`, the milter from a `{msg_size}` macro, which Postfix does not send): `count: bytes`.
   */
  messageSize?: number;
  /** The authenticated user, when there is one. */
  authUser?: string;
  /** An accept policy at connect trusts the session: later stages record but skip policies. */
  trusted: boolean;
  closed: boolean;
}

export type Verdict =
  | { action: 'continue' }
  | { action: 'accept' }
  | { action: 'tarpit'; delayMs: number; policy?: string }
  | { action: 'tempfail' | 'reject'; reply: Reply; close: boolean; policy?: string };

export const CONTINUE: Verdict = Object.freeze({ action: 'continue' });

/** A counted AUTH attempt: its verdict, and how to take the count back when it was no failure. */
export interface AuthAttempt {
  verdict: Verdict;
  /** The password was right, or could not be checked: the attempt is not a failure. */
  undo(): void;
}

export interface EngineDeps {
  recorder: Recorder;
  sessions: SessionGauge;
  hostname: () => string;
  logger: Logger;
  /** Bans and protected networks; none when absent. */
  controls?: Controls;
  /** Where verdicts other than continue are published (the console's live decisions); never awaited. */
  events?: GatewayEvents;
  /** Told every call a front makes and its outcome (the journal, src/journal/; replay's collector). */
  journal?: EngineJournal;
}

/** The session events besides the stages: what replaying a session needs to know happened. */
export type SessionEvent = 'open' | 'close' | 'delivered' | 'client' | 'auth_ok';

/**
 * What the engine reports, for the journal: each stage event with the facts it was decided on,
 * its verdict and what the recorder did (absent when the stage had nothing to record or
 * evaluate), each reject event with the context of the refused stage (`derived` when the engine
 * refused, rather than a front reporting a refusal: replay derives those again instead of
 * feeding them), and the session events.
 */
export interface EngineJournal {
  stage(s: Session, ctx: EventContext, verdict: Verdict, res?: StageResult): void;
  reject(s: Session, of: EventContext, res: StageResult | undefined, derived: boolean): void;
  session(s: Session, event: SessionEvent): void;
}

/** Lower-cased address and its domain ('' when there is none, which templates treat as missing). */
export function splitAddress(address: string): [string, string] {
  const a = address.toLowerCase();
  const at = a.lastIndexOf('@');
  return [a, at > 0 ? a.slice(at + 1) : ''];
}

/** A new transaction's sender (its recipients start empty). */
export function setSender(s: Session, address: string): void {
  [s.mailFrom, s.mailFromDomain] = splitAddress(address);
  s.rcpts = [];
  s.messageSize = undefined;
  s.rcpt = undefined;
  s.rcptDomain = undefined;
}

/** The transaction ended (milter ABORT, RSET): the session goes on without sender or recipients. */
export function endTransaction(s: Session): void {
  s.mailFrom = undefined;
  s.mailFromDomain = undefined;
  s.rcpt = undefined;
  s.rcptDomain = undefined;
  s.rcpts = [];
  s.messageSize = undefined;
}

/**
 * Fronts whose sessions count in the concurrent-sessions gauge (`sessions`, `sessions6`): those
 * that see a session end (SMTP: the connection closes; milter: QUIT, QUIT_NC or a dropped MTA
 * connection). Postfix's policy delegation never says that a session ended, so policy-service
 * sessions are not counted there (they would only ever pile up).
 */
const GAUGED: Readonly<Record<FrontKind, boolean>> = { smtp: true, milter: true, policy: false };

/** The recipient the next rcpt event is about. */
export function setRecipient(s: Session, address: string): void {
  [s.rcpt, s.rcptDomain] = splitAddress(address);
}

/** A verdict naming the policy that decided it, when one did. */
function withPolicy(v: Verdict, res: StageResult): Verdict {
  if (res.fired && (v.action === 'tarpit' || v.action === 'tempfail' || v.action === 'reject')) v.policy = res.fired.policy.name;
  return v;
}

/** What the recorder and the policies see of a session at a stage. */
export function contextOf(s: Session, stage: Stage): EventContext {
  const c: EventContext = { stage, client: s.client, ip: s.client?.text ?? '' };
  if (s.helo) c.helo = s.helo;
  if (s.authUser) c.auth_user = s.authUser;
  if (s.mailFrom !== undefined && stage !== 'connect' && stage !== 'helo' && stage !== 'auth_fail') {
    c.mail_from = s.mailFrom;
    c.mail_from_domain = s.mailFromDomain ?? '';
  }
  if (s.rcpt !== undefined && (stage === 'rcpt' || stage === 'rcpt_rejected' || stage === 'reject')) {
    c.rcpt = s.rcpt;
    c.rcpt_domain = s.rcptDomain ?? '';
  }
  if (stage === 'data') {
    c.rcpts = s.rcpts.length;
    if (s.messageSize !== undefined) c.bytes = s.messageSize;
  }
  return c;
}

export class SessionEngine {
  constructor(private readonly deps: EngineDeps) {}

  open(front: FrontKind, cid: string, client: ClientAddress | undefined): Session {
    if (GAUGED[front]) this.deps.sessions.opened(client);
    const s: Session = { cid, front, tag: `${cid}@${this.deps.hostname()}`, client, rcpts: [], trusted: false, closed: false };
    this.deps.journal?.session(s, 'open');
    return s;
  }

  /** The client changed mid-connection (XCLIENT): from now on the session counts the new one, untrusted. */
  changeClient(s: Session, client: ClientAddress | undefined): boolean {
    if (client?.text === s.client?.text) return false;
    this.deps.sessions.closed(s.client);
    s.client = client;
    s.trusted = false;
    this.deps.sessions.opened(client);
    this.deps.journal?.session(s, 'client');
    return true;
  }

  close(s: Session): void {
    if (s.closed) return;
    s.closed = true;
    if (GAUGED[s.front]) this.deps.sessions.closed(s.client);
    this.deps.journal?.session(s, 'close');
  }

  /**
   * Runs a stage: records the event, evaluates the stage's policies, and returns the verdict.
   * Synchronous (CONTINUE) when the stage has nothing to record or evaluate.
   */
  stage(s: Session, stage: Stage): Verdict | Promise<Verdict> {
    if (stage === 'connect') {
      const banned = this.refuseBanned(s);
      if (banned) return banned;
    }
    if (this.deps.recorder.passes(stage, s.trusted)) {
      this.deps.journal?.stage(s, contextOf(s, stage), CONTINUE);
      return CONTINUE;
    }
    return this.run(s, stage, contextOf(s, stage));
  }

  /**
   * A banned client at connect: refused at once (421, the time left), before any policy runs.
   * Its connect is still recorded (monitors, record rules) and counted as a rejection, so a
   * client hammering while banned keeps its counts up for when the ban ends.
   */
  private refuseBanned(s: Session): Verdict | undefined {
    const ban = this.deps.controls?.banned(s.client);
    if (!ban) return undefined;
    const ctx = contextOf(s, 'connect');
    void this.deps.recorder.record(ctx).catch(() => undefined);
    const left = (ban.until - this.deps.recorder.now()) / 1000;
    this.deps.logger.info({ cid: s.cid, client: ctx.ip, stage: 'connect', ban: ban.prefix, policy: ban.policy, seconds_left: Math.ceil(left) }, 'banned client refused');
    const v = this.publish(s, 'connect', { action: 'tempfail', reply: banReply(s.tag, ban.prefix, left), close: true, policy: ban.policy }, ban.prefix);
    this.deps.journal?.stage(s, ctx, v);
    this.rejectEvent(s, ctx, true);
    return v;
  }

  /** What the recorder is told about the session besides the event. */
  private options(s: Session): StageOptions {
    const protect = this.deps.controls?.isProtected(s.client) ?? false;
    return protect ? { skipPolicies: s.trusted, protect } : { skipPolicies: s.trusted };
  }

  /** The backend (or the MTA) refused what the client sent: the `reject` event. */
  refused(s: Session, stage: Stage): void {
    this.rejectEvent(s, contextOf(s, stage), false);
  }

  /**
   * The backend refused the recipient (5xx): the rcpt_rejected event, which directory-harvest
   * policies count. Its verdict may refuse with the policy's own reply; either way the RCPT was
   * refused, so the `reject` event is recorded. Decided at once with a store in this process
   * (the journal line follows the adds with nothing in between), the promise notwithstanding.
   */
  recipientRejected(s: Session): Promise<Verdict> {
    const ctx = contextOf(s, 'rcpt_rejected');
    const decided = (res: StageResult | undefined): Verdict => {
      const v = res ? this.publish(s, 'rcpt', this.verdict(s, 'rcpt', res)) : CONTINUE;
      this.deps.journal?.stage(s, ctx, v, res);
      this.rejectEvent(s, contextOf(s, 'rcpt'), true);
      return v;
    };
    if (this.deps.recorder.passes('rcpt_rejected', s.trusted)) return Promise.resolve(decided(undefined));
    return Promise.resolve(after(this.deps.recorder.stage(ctx, s.cid, this.options(s)), decided));
  }

  /**
   * An AUTH attempt by `user`, counted as an auth_fail event before anyone checks the password,
   * so the policies see it already counted (a brute-forcer over its limit is refused before the
   * backend is asked, even with many attempts in flight). The caller undoes it when the
   * password was right or could not be checked. Decided at once with a store in this process.
   */
  authAttempt(s: Session, user: string): Promise<AuthAttempt> {
    const ctx = contextOf(s, 'auth_fail');
    ctx.auth_user = user.toLowerCase();
    const journal = this.deps.journal;
    if (this.deps.recorder.passes('auth_fail', s.trusted)) {
      journal?.stage(s, ctx, CONTINUE);
      return Promise.resolve({ verdict: CONTINUE, undo: () => journal?.session(s, 'auth_ok') });
    }
    const decided = (res: StageResult): AuthAttempt => {
      const verdict = s.closed ? CONTINUE : this.publish(s, 'auth_fail', this.verdict(s, 'auth_fail', res));
      journal?.stage(s, ctx, verdict, res);
      if (verdict.action === 'tempfail' || verdict.action === 'reject') this.rejectEvent(s, ctx, true);
      return {
        verdict,
        undo: () => {
          journal?.session(s, 'auth_ok');
          void this.deps.recorder.undo(ctx);
        },
      };
    };
    return Promise.resolve(after(this.deps.recorder.stage(ctx, s.cid, this.options(s)), decided));
  }

  /**
   * A message the backend accepted, of `size` bytes when the front knows it: the `receptions`
   * monitors, and the data stage's `count: bytes` rules (which add after the data stage's
   * policies ran, so those see the bytes of earlier messages only).
   */
  delivered(s: Session, size?: number): void {
    if (size !== undefined) s.messageSize = size;
    this.deps.journal?.session(s, 'delivered');
    void this.deps.recorder.monitor('receptions', s.client);
    if (s.messageSize !== undefined && this.deps.recorder.countsBytes()) void this.deps.recorder.messageBytes(contextOf(s, 'data'));
  }

  private run(s: Session, stage: Stage, ctx: EventContext): Maybe<Verdict> {
    return after(this.deps.recorder.stage(ctx, s.cid, this.options(s)), (res) => this.decided(s, stage, ctx, res));
  }

  /** The recorder decided the stage: the verdict, told to the journal and the console; a refusal's reject event. */
  private decided(s: Session, stage: Stage, ctx: EventContext, res: StageResult): Verdict {
    if (s.closed) {
      this.deps.journal?.stage(s, ctx, CONTINUE, res);
      return CONTINUE;
    }
    const v = this.publish(s, stage, this.verdict(s, stage, res));
    this.deps.journal?.stage(s, ctx, v, res);
    if (v.action === 'tempfail' || v.action === 'reject') this.rejectEvent(s, ctx, true);
    else if (v.action === 'accept' && stage === 'connect') s.trusted = true;
    return v;
  }

  /**
   * A recorder decision as a verdict, with the reply from the one table. A policy with `ban`
   * that refuses or slows the client bans its prefix; a protected client is never refused
   * (the policies were evaluated as shadow for it; this also covers a store-failure tempfail).
   */
  private verdict(s: Session, stage: Stage, res: StageResult): Verdict {
    if (res.verdict !== 'continue' && res.verdict !== 'accept') {
      const controls = this.deps.controls;
      if (controls?.isProtected(s.client)) return CONTINUE;
      if (controls && res.fired?.policy.ban && s.client) controls.ban(s.client, res.fired.policy, s.cid);
    }
    switch (res.verdict) {
      case 'tempfail':
      case 'reject': {
        const reply = res.storeFailure
          ? refusalReply('tempfail', stage, s.tag, STORE_FAILURE_REPLY)
          : refusalReply(res.verdict, stage, s.tag, res.fired?.policy.reply, res.retryAfter);
        const v: Verdict = { action: res.verdict, reply, close: reply.code === 421 };
        return withPolicy(v, res);
      }
      case 'tarpit':
        return withPolicy({ action: 'tarpit', delayMs: res.fired?.policy.delayMs ?? 0 }, res);
      case 'accept':
        return { action: 'accept' };
      default:
        return CONTINUE;
    }
  }

  /**
   * Tells whoever listens (the console) about a verdict other than continue. Synchronous and
   * guarded: a listener that throws is logged, never felt by the session.
   */
  private publish(s: Session, stage: Stage, v: Verdict, ban?: string): Verdict {
    const events = this.deps.events;
    if (v.action === 'continue' || !events || events.listenerCount('decision') === 0) return v;
    const e: DecisionEvent = { at: this.deps.recorder.now(), cid: s.cid, front: s.front, stage, client: s.client?.text ?? '', action: v.action };
    if (v.action !== 'accept' && v.policy !== undefined) e.policy = v.policy;
    if (v.action === 'tempfail' || v.action === 'reject') e.reply = `${v.reply.code} ${v.reply.enhanced} ${v.reply.text}`;
    if (ban !== undefined) e.ban = ban;
    try {
      events.emit('decision', e);
    } catch (err) {
      this.deps.logger.warn({ err, cid: s.cid }, 'a decision listener failed');
    }
    return v;
  }

  /**
   * The `reject` event of a refusal at ctx.stage; `derived` when the engine refused (not a
   * front's report). Recorded at once with a store in this process; never awaited, never thrown.
   */
  private rejectEvent(s: Session, ctx: EventContext, derived: boolean): void {
    if (ctx.stage === 'reject') return;
    if (this.deps.recorder.passes('reject')) {
      this.deps.journal?.reject(s, ctx, undefined, derived);
      return;
    }
    const failed = (err: unknown): void => this.deps.logger.debug({ err, cid: s.cid }, 'recording a reject event failed');
    try {
      const res = this.deps.recorder.stage({ ...ctx, stage: 'reject' }, s.cid);
      if (res instanceof Promise) res.then((r) => this.deps.journal?.reject(s, ctx, r, derived)).catch(failed);
      else this.deps.journal?.reject(s, ctx, res, derived);
    } catch (err) {
      failed(err);
    }
  }
}
