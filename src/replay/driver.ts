/**
 * One client's session driven through an engine as a client would have gone through a front:
 * what the client did (from a journal, or a policy test's script) is fed in order, and what the
 * engine's verdicts make impossible is not fed — a client refused at connect, or told 421, is
 * gone; after a refused MAIL the transaction's RCPTs and DATA do not happen; a refused RCPT is
 * not the backend's to refuse; a refused DATA delivers nothing; a refused AUTH attempt is never
 * taken back. Each call returns the verdict, or undefined when the client could not have got there.
 *
 * What else a refusal rules out depends on who asks the engine (REACH): the SMTP proxy's client
 * must say HELO again after a refused one, and needs a RCPT the engine let through before DATA
 * (or before the backend can refuse it); Postfix, in front of the milter and the policy service,
 * takes MAIL after a refused HELO and asks the milter about recipients it refused itself; and it
 * asks a policy service only at the stages its restrictions name (RCPT without MAIL, DATA without
 * RCPT), with its own count of the recipients it accepted (the journal's `n`).
 */
import type { Stage } from '../config/vocabulary.js';
import type { ClientAddress } from '../series/address.js';
import { after, type Maybe } from '../maybe.js';
import { splitAddress, type AuthAttempt, type FrontKind, type Session, type SessionEngine, type Verdict } from '../audit/session.js';

/** The facts a session's next event is decided on (undefined: not known at that point). */
export interface Facts {
  /** data: the MTA's count of the recipients it accepted, where the engine is not asked about each (the policy service). */
  rcpts?: number | undefined;
  helo?: string | undefined;
  authUser?: string | undefined;
  mailFrom?: string | undefined;
  rcpt?: string | undefined;
  /** The message's size, when the front knew it at the data stage. */
  bytes?: number | undefined;
}

/** The stages a client's commands run (rcpt_rejected and reject come from the backend). */
export type ClientStage = Extract<Stage, 'connect' | 'helo' | 'mail' | 'rcpt' | 'data'>;

export const refusal = (v: Verdict): boolean => v.action === 'tempfail' || v.action === 'reject';
/** Lets the engine finish what it started and did not wait for (the reject event of a refusal). */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Reach {
  /** After a refused HELO, MAIL waits for a new HELO. */
  heloBeforeMail: boolean;
  /** RCPT needs a MAIL the engine let through (else: only a refused MAIL rules it out). */
  rcptAfterMail: boolean;
  /** DATA needs a RCPT the engine let through (else: a refused MAIL, or every RCPT asked refused, rules it out). */
  dataAfterRcpt: boolean;
  /** rcpt_rejected follows a RCPT the engine let through (the backend refused it after the engine). */
  rejectedAfterRcpt: boolean;
}

const REACH: Record<FrontKind, Reach> = {
  smtp: { heloBeforeMail: true, rcptAfterMail: true, dataAfterRcpt: true, rejectedAfterRcpt: true },
  milter: { heloBeforeMail: false, rcptAfterMail: true, dataAfterRcpt: true, rejectedAfterRcpt: false },
  policy: { heloBeforeMail: false, rcptAfterMail: false, dataAfterRcpt: false, rejectedAfterRcpt: false },
};

/** A refusal that closes the connection (a 421). */
const closing = (v: Verdict): boolean => (v.action === 'tempfail' || v.action === 'reject') && v.close;

export class SessionDriver {
  readonly s: Session;
  /** The engine ended the session (a refusal at connect, a 421), or the client left. */
  private ended = false;
  private heloRefused = false;
  /** A MAIL the engine let through, whose transaction is still open. */
  private inTransaction = false;
  /** The last MAIL was refused: its transaction's RCPTs and DATA do not happen. */
  private mailRefused = false;
  /** RCPTs asked, and let through, since the last MAIL or DATA. */
  private rcptsAsked = 0;
  private rcptsThrough = 0;
  /** The MTA's count of accepted recipients given with the facts (REACH: policy service). */
  private mtaRcpts: number | undefined;
  private readonly reach: Reach;
  /** The last RCPT passed the engine: the backend may still refuse it. */
  private rcptPassed = false;
  /** DATA passed the engine: the backend may deliver or refuse the message. */
  private dataPassed = false;
  private attempt: AuthAttempt | undefined;
  /** The sender and recipient as last given to facts(), before splitting. */
  private mailFromRaw: string | undefined;
  private rcptRaw: string | undefined;

  constructor(
    private readonly engine: SessionEngine,
    front: FrontKind,
    cid: string,
    client: ClientAddress | undefined,
  ) {
    this.s = engine.open(front, cid, client);
    this.reach = REACH[front];
  }

  get gone(): boolean {
    return this.ended;
  }

  /** Sets the facts exactly (an undefined fact is cleared). */
  facts(f: Facts): void {
    const s = this.s;
    s.helo = f.helo;
    s.authUser = f.authUser;
    // a session's lines repeat its sender (and a recipient its rcpt_rejected): split once
    if (f.mailFrom !== this.mailFromRaw) {
      this.mailFromRaw = f.mailFrom;
      [s.mailFrom, s.mailFromDomain] = f.mailFrom === undefined ? [undefined, undefined] : splitAddress(f.mailFrom);
    }
    if (f.rcpt !== this.rcptRaw) {
      this.rcptRaw = f.rcpt;
      [s.rcpt, s.rcptDomain] = f.rcpt === undefined ? [undefined, undefined] : splitAddress(f.rcpt);
    }
    s.messageSize = f.bytes;
    this.mtaRcpts = f.rcpts;
  }

  /** At once when the engine's store is in this process (a virtual engine's is). */
  stage(stage: ClientStage): Maybe<Verdict | undefined> {
    if (this.ended || !this.reachable(stage)) return undefined;
    if (stage === 'mail') {
      this.s.rcpts = [];
      this.s.messageSize = undefined;
      this.inTransaction = false;
      this.mailRefused = false;
    } else if (stage === 'rcpt' && !this.inTransaction && this.rcptsAsked === 0) {
      // a transaction's first RCPT where the MTA asked nothing at MAIL: a new transaction
      this.s.rcpts = [];
    } else if (stage === 'data' && !this.reach.dataAfterRcpt && this.mtaRcpts !== undefined) {
      // the MTA's own count stands for the recipients (only their number is known)
      const rcpts = this.s.rcpts;
      if (rcpts.length > this.mtaRcpts) rcpts.length = this.mtaRcpts;
      while (rcpts.length < this.mtaRcpts) rcpts.push('');
    }
    return after(this.engine.stage(this.s, stage), (v) => this.staged(stage, v));
  }

  /** Whether the client (or the MTA asking) could get to `stage` after the engine's verdicts so far. */
  private reachable(stage: ClientStage): boolean {
    const r = this.reach;
    switch (stage) {
      case 'mail':
        return !(r.heloBeforeMail && this.heloRefused);
      case 'rcpt':
        return r.rcptAfterMail ? this.inTransaction : !this.mailRefused;
      case 'data':
        if (r.dataAfterRcpt) return this.inTransaction && this.s.rcpts.length > 0;
        return !this.mailRefused && this.mtaRcpts !== 0 && (this.rcptsAsked === 0 || this.rcptsThrough > 0);
      default:
        return true;
    }
  }

  /** What the verdict of a stage leaves the client able to do next. */
  private staged(stage: ClientStage, v: Verdict): Verdict {
    const refused = refusal(v);
    if ((refused && stage === 'connect') || closing(v)) this.close();
    if (stage === 'helo') this.heloRefused = refused;
    else if (stage === 'mail') {
      this.inTransaction = !refused;
      this.mailRefused = refused;
      this.rcptsAsked = this.rcptsThrough = 0;
    } else if (stage === 'rcpt') {
      this.rcptPassed = !refused;
      this.rcptsAsked++;
      if (!refused) {
        this.rcptsThrough++;
        this.s.rcpts.push(this.s.rcpt ?? '');
      }
    } else if (stage === 'data') {
      this.inTransaction = false;
      this.dataPassed = !refused;
      this.rcptsAsked = this.rcptsThrough = 0;
    }
    return v;
  }

  /** The backend refused the last recipient (5xx). */
  async rcptRejected(): Promise<Verdict | undefined> {
    if (this.ended) return undefined;
    if (this.reach.rejectedAfterRcpt) {
      if (!this.rcptPassed) return undefined;
      this.rcptPassed = false;
      this.s.rcpts.pop();
    } else if (!this.reachable('rcpt')) return undefined; // the MTA refused it where it would have asked about a RCPT
    const v = await this.engine.recipientRejected(this.s);
    if (closing(v)) this.close();
    return v;
  }

  /** The backend refused what the client sent at `stage` (a MAIL, a RCPT with a 4xx, a message). */
  refused(stage: Stage): boolean {
    if (this.ended) return false;
    if (stage === 'rcpt') {
      if (!this.rcptPassed) return false;
      this.rcptPassed = false;
      this.s.rcpts.pop();
    } else if (stage === 'mail') {
      if (!this.inTransaction) return false;
      this.inTransaction = false;
    } else if (stage === 'data') {
      if (!this.dataPassed) return false;
      this.dataPassed = false;
    }
    this.engine.refused(this.s, stage);
    return true;
  }

  /** An AUTH attempt by `user`, counted before anyone checks the password. */
  async auth(user: string): Promise<Verdict | undefined> {
    if (this.ended) return undefined;
    const attempt = await this.engine.authAttempt(this.s, user);
    const v = attempt.verdict;
    this.attempt = refusal(v) ? undefined : attempt;
    if (closing(v)) this.close();
    return v;
  }

  /** The password was right (or could not be checked): the attempt is taken back. */
  authOk(): boolean {
    const a = this.attempt;
    this.attempt = undefined;
    if (!a) return false;
    a.undo();
    return true;
  }

  /** The backend accepted the message (of `size` bytes, when the front knows it). */
  delivered(size?: number): boolean {
    if (this.ended || !this.dataPassed) return false;
    this.dataPassed = false;
    this.engine.delivered(this.s, size);
    return true;
  }

  /** XCLIENT gave another address. */
  changeClient(client: ClientAddress | undefined): void {
    if (!this.ended) this.engine.changeClient(this.s, client);
  }

  /** The client left (or was sent away). */
  close(): void {
    this.ended = true;
    this.engine.close(this.s);
  }

}
