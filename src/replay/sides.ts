/**
 * The two sides of a replay's comparison. Each is fed every journal line in time order and
 * answers, for an event a client was answered for (a client stage, rcpt_rejected, auth_fail),
 * the decision it made — or that the client would not have got there:
 *
 *   RecordedSide  the decisions the journal recorded (what the gateway did)
 *   RunSide       a config's engine on a virtual clock, fed the recorded sessions (what that
 *                 config would have done); its own journal lines are its record
 */
import type { Config } from '../config/types.js';
import type { Verdict } from '../audit/session.js';
import { parseClientAddress, type ClientAddress } from '../series/address.js';
import { AuditgateError } from '../errors.js';
import { ADMIN, isStage, type JournalLine } from '../journal/line.js';
import { LineCapture } from './capture.js';
import { SessionDriver, type ClientStage } from './driver.js';
import { after, type Maybe } from '../maybe.js';
import { Tally } from './tally.js';
import { virtualEngine, type VirtualEngine } from './virtual-engine.js';

/** A decision: the outcome (continue when no policy decided) and the policy that decided. */
export interface Decided {
  o: string;
  y?: string;
}

/** Not a decision the client saw (a session event, a reject event). */
export const NOT_DECIDED = 'not-decided';
/** The side's own refusals earlier in the session mean the client would not have got here. */
export const UNREACHED = 'unreached';
export type Answer = Decided | typeof NOT_DECIDED | typeof UNREACHED;

const MAX_CACHED_CLIENTS = 100_000;

export interface Side {
  readonly tally: Tally;
  /** `t`: the line's time, never before the last line's. */
  feed(line: JournalLine, t: number): Answer | Promise<Answer>;
}

const decisionOf = (l: JournalLine): Decided => (l.y === undefined ? { o: l.o ?? 'continue' } : { o: l.o ?? 'continue', y: l.y });

/** Events a client was answered for. */
const answered = (l: JournalLine): boolean => isStage(l.e) && l.e !== 'reject' && l.d === undefined;

export class RecordedSide implements Side {
  readonly tally = new Tally();

  feed(line: JournalLine): Answer {
    this.tally.add(line);
    return answered(line) ? decisionOf(line) : NOT_DECIDED;
  }
}

export class RunSide implements Side {
  readonly tally = new Tally();
  private readonly ve: VirtualEngine;
  private readonly drivers = new Map<string, SessionDriver>();
  /** The line the engine writes for the event being fed. */
  private readonly capture = new LineCapture();
  private readonly clients = new Map<string, ClientAddress>();

  constructor(config: Config, startMs: number) {
    this.ve = virtualEngine(
      config,
      startMs,
      (l) => {
        this.tally.add(l);
        this.capture.offer(l);
      },
      true,
    );
  }

  /** Client addresses, parsed once (a journal names the same clients over and over). */
  private client(text: string | undefined): ClientAddress | undefined {
    if (text === undefined) return undefined;
    let c = this.clients.get(text);
    if (c === undefined) {
      if (this.clients.size >= MAX_CACHED_CLIENTS) this.clients.clear();
      c = parseClientAddress(text);
      if (c) this.clients.set(text, c);
    }
    return c;
  }

  feed(line: JournalLine, t: number): Answer | Promise<Answer> {
    this.ve.clock.set(t);
    if (line.d) return NOT_DECIDED; // the engine derives its own
    if (line.f === ADMIN) {
      this.control(line, t);
      return NOT_DECIDED;
    }
    let d = this.drivers.get(line.c);
    if (!d || line.e === 'open') {
      d?.close();
      d = new SessionDriver(this.ve.engine, line.f, line.c, this.client(line.a));
      this.drivers.set(line.c, d);
      if (line.e === 'open') return NOT_DECIDED;
    }
    if (line.e === 'client' || (line.a ?? undefined) !== d.s.client?.text) d.changeClient(this.client(line.a));
    this.capture.expect(line.c, line.e);
    switch (line.e) {
      case 'connect':
      case 'helo':
      case 'mail':
      case 'rcpt':
      case 'data':
        d.facts({ helo: line.h, authUser: line.u, mailFrom: line.m, rcpt: line.r, bytes: line.b, rcpts: line.n });
        return this.decide(d.stage(line.e as ClientStage));
      case 'rcpt_rejected':
        d.facts({ helo: line.h, authUser: line.u, mailFrom: line.m, rcpt: line.r });
        return this.decide(d.rcptRejected());
      case 'auth_fail':
        d.facts({ helo: line.h, mailFrom: line.m });
        return this.decide(d.auth(line.u ?? ''));
      case 'reject':
        d.facts({ helo: line.h, authUser: line.u, mailFrom: line.m, rcpt: line.r });
        d.refused(line.s!);
        return NOT_DECIDED;
      case 'auth_ok':
        d.authOk();
        return NOT_DECIDED;
      case 'delivered':
        d.delivered(line.b);
        return NOT_DECIDED;
      case 'close':
        d.close();
        this.drivers.delete(line.c);
        return NOT_DECIDED;
      default:
        return NOT_DECIDED;
    }
  }

  /**
   * A ban made or lifted by hand, applied as the operator did (for what was left of it at `t`).
   * One the config's protected networks forbid is not made (AG_BAN); a lift of a ban this side
   * does not hold changes nothing.
   */
  private control(line: JournalLine, t: number): void {
    try {
      if (line.e === 'ban' && line.g! > t) this.ve.controls.add(line.a!, (line.g! - t) / 1000);
      else if (line.e === 'lift') this.ve.controls.lift(line.a!);
    } catch (err) {
      if (!(err instanceof AuditgateError)) throw err;
    }
  }

  /**
   * The decision for the event being fed: from the line the engine wrote for it. The virtual
   * engine's store is in this process, so the engine has recorded everything an event does
   * (the reject event of a refusal too) by the time its verdict is here.
   */
  private decide(v: Maybe<Verdict | undefined>): Maybe<Answer> {
    return after(v, (verdict) => this.answer(verdict));
  }

  private answer(verdict: Verdict | undefined): Answer {
    const got = this.capture.take();
    if (!verdict) return UNREACHED;
    return got ? decisionOf(got) : { o: verdict.action };
  }
}
