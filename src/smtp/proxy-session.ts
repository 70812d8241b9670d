/**
 * One client's session through the SMTP proxy: the engine's session plus what only a proxy has
 * (the backend transaction in lockstep, the backend connection of an authenticated client,
 * tarpit timers). Each method is one smtp-server hook: it fills the engine's session from the
 * protocol, asks the engine, and relays what the engine let through to the backend, answering
 * the client with the backend's reply.
 */
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Logger } from 'pino';
import type { Stage } from '../config/vocabulary.js';
import { BackendsUnavailableError, MessageAbortedError, RelayError } from '../errors.js';
import type { GatewayEvents, RelayCommand } from '../events.js';
import { parseClientAddress } from '../series/address.js';
import { setRecipient, setSender, type Session, type SessionEngine, type Verdict } from '../audit/session.js';
import type { SmtpReply } from './relay/reply.js';
import type { AuthenticatedRelay, MailFromParams, Relay, RelayAuthResult, RelayTransaction } from './relay/types.js';
import { replyError, smtpError, type SmtpError } from './smtp-error.js';

export type AuthResult = 'ok' | 'failed' | 'refused' | 'tempfail';

/** What the proxy counts for /metrics (read at scrape time). */
export interface ProxyStats {
  /** Relay transport failures (backend unreachable, timed out, broke). */
  relayFailures: number;
  /** AUTH attempts by outcome: ok, failed (backend 5xx), refused (auth_fail policy before the backend), tempfail. */
  auth: Record<AuthResult, number>;
}

export interface ProxyDeps {
  engine: SessionEngine;
  relay: () => Relay;
  hostname: () => string;
  maxRecipients: () => number;
  stats: ProxyStats;
  events: GatewayEvents;
  logger: Logger;
}

type Callback = (err?: Error | null) => void;

export class ProxySession {
  readonly s: Session;
  /** session.remoteAddress as last seen (XCLIENT changes it). */
  private rawAddress: string;
  private tx: RelayTransaction | undefined;
  /** After a successful AUTH: the backend session authenticated as this client's user. */
  private auth: AuthenticatedRelay | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly deps: ProxyDeps,
    session: SMTPServerSession,
  ) {
    this.rawAddress = session.remoteAddress;
    // undefined when the address is not one we can count (an XCLIENT'd scoped address, say)
    this.s = deps.engine.open('smtp', session.id, parseClientAddress(session.remoteAddress));
  }

  get closed(): boolean {
    return this.s.closed;
  }

  // ---- hooks ------------------------------------------------------------------------------

  connect(session: SMTPServerSession, cb: Callback): void {
    this.decide(session, 'connect', cb, () => cb());
  }

  /** HELO/EHLO; after XCLIENT, first the forwarded client's connect stage (XCLIENT has no connect hook). */
  helo(session: SMTPServerSession, proceed: () => void, refuse: (err: SmtpError) => void): void {
    const cb: Callback = (err) => (err ? refuse(err as SmtpError) : proceed());
    const helo = (): void => this.decide(session, 'helo', cb, proceed);
    if (this.followXclient(session)) this.decide(session, 'connect', cb, helo);
    else helo();
  }

  /**
   * AUTH PLAIN / LOGIN, checked by the backend. The engine counts the attempt before the backend
   * is asked and the count is taken back when the password was right (or could not be checked).
   * A refusal is a 421 (tempfail, the connection closes) or a 535; a tarpit delays a failure's 535.
   */
  async authenticate(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): Promise<void> {
    if (auth.method === 'XCLIENT') {
      // XCLIENT LOGIN= from a trusted peer: let it through unauthenticated, as smtp-server does
      cb(undefined);
      return;
    }
    const { s } = this;
    if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') {
      cb(smtpError(504, `5.5.4 Unrecognized authentication type [${s.tag}]`));
      return;
    }
    const user = auth.username ?? '';
    const outcome = (result: AuthResult, extra: Record<string, unknown> = {}): void => {
      this.deps.stats.auth[result]++;
      this.deps.logger.info({ cid: s.cid, client: s.client?.text, user, method: auth.method, result, ...extra }, 'AUTH');
    };
    this.sync(session);
    const attempt = await this.deps.engine.authAttempt(s, user);
    if (s.closed) return; // the client left: its attempt stays counted, nothing was checked
    const v = attempt.verdict;
    if (v.action === 'tempfail' || v.action === 'reject') {
      outcome('refused', { policy: v.policy });
      cb(replyError(v.reply));
      return;
    }
    let res: RelayAuthResult;
    try {
      res = await this.deps.relay().authenticate({ clientAddress: s.client?.text ?? '' }, user, auth.password ?? '');
    } catch (err) {
      attempt.undo();
      this.relayFailure(err);
      outcome('tempfail');
      cb(smtpError(454, `4.7.0 Temporary authentication failure, try again later [${s.tag}]`));
      return;
    }
    if (s.closed) {
      res.session?.close();
      if (res.reply.code < 500) attempt.undo();
      return;
    }
    if (res.reply.code === 235 && res.session) {
      attempt.undo();
      this.auth?.close(); // a new AUTH after STARTTLS or XCLIENT reset the identity
      this.auth = res.session;
      outcome('ok');
      cb(null, { user });
      return;
    }
    if (res.reply.code >= 500) {
      outcome('failed', { reply: res.reply.code });
      const fail = (): void => cb(smtpError(535, `5.7.8 Authentication credentials invalid [${s.tag}]`));
      if (v.action === 'tarpit') this.later(v.delayMs, fail);
      else fail();
      return;
    }
    attempt.undo();
    outcome('tempfail', { reply: res.reply.code });
    cb(backendError(res.reply, s.tag));
  }

  mail(address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void {
    if (this.tx) {
      // A new MAIL ends whatever transaction came before (RSET, or a client starting over):
      // free its backend connection now, whatever the policies say about this one.
      const old = this.tx;
      this.tx = undefined;
      void old.release().catch(() => {});
    }
    setSender(this.s, address.address);
    const mail = (): void => this.decide(session, 'mail', cb, () => void this.openTransaction(address, session, cb));
    // the forwarded client is new to us: its connect stage runs now (XCLIENT has no onConnect)
    if (this.followXclient(session)) this.decide(session, 'connect', cb, mail);
    else mail();
  }

  rcpt(address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void {
    const max = this.deps.maxRecipients();
    if (session.envelope.rcptTo.length >= max) {
      cb(smtpError(452, `4.5.3 Too many recipients (at most ${max} per message) [${this.s.tag}]`));
      return;
    }
    setRecipient(this.s, address.address);
    this.decide(session, 'rcpt', cb, () => void this.relayRcpt(address, cb));
  }

  data(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    this.decide(session, 'data', cb, () => void this.relayData(stream, session, cb));
  }

  /** The client is gone: timers, backend transaction and authenticated backend session go with it. */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.tx?.abort();
    this.tx = undefined;
    this.auth?.close();
    this.deps.engine.close(this.s);
  }

  /** Drops the backend transaction at once (the gateway is shutting down). */
  abort(): void {
    this.tx?.abort();
    this.tx = undefined;
  }

  // ---- engine ------------------------------------------------------------------------------

  /** Copies what smtp-server knows of the session into the engine's session. */
  private sync(session: SMTPServerSession): void {
    this.s.helo = session.hostNameAppearsAs || undefined;
    // smtp-server sets user to false after STARTTLS and XCLIENT: only a real identity counts
    this.s.authUser = session.user ? String(session.user) : undefined;
  }

  /**
   * Runs a stage and turns the verdict into the hook's answer: a refusal is the engine's reply,
   * a tarpit calls `next` later, accept and continue call it now.
   */
  private decide(session: SMTPServerSession, stage: Stage, cb: Callback, next: () => void): void {
    this.sync(session);
    const v = this.deps.engine.stage(this.s, stage);
    if (v instanceof Promise) {
      v.then(
        (verdict) => this.apply(verdict, cb, next),
        (err: unknown) => {
          this.deps.logger.error({ err, cid: this.s.cid, stage }, 'stage failed');
          cb(smtpError(451, `4.3.0 Temporary local problem, try again later [${this.s.tag}]`));
        },
      );
    } else this.apply(v, cb, next);
  }

  private apply(v: Verdict, cb: Callback, next: () => void): void {
    if (this.s.closed) return;
    switch (v.action) {
      case 'tempfail':
      case 'reject':
        cb(replyError(v.reply));
        return;
      case 'tarpit':
        this.later(v.delayMs, next);
        return;
      default:
        next();
    }
  }

  /** Runs `fn` after `ms` unless the client has left by then (tarpits). */
  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.s.closed) fn();
    }, ms);
    this.timers.add(t);
  }

  /** XCLIENT changed the client address: count the new client from now on. True when it changed. */
  private followXclient(session: SMTPServerSession): boolean {
    if (session.remoteAddress === this.rawAddress) return false;
    this.rawAddress = session.remoteAddress;
    return this.deps.engine.changeClient(this.s, parseClientAddress(session.remoteAddress));
  }

  // ---- relay -------------------------------------------------------------------------------

  private timed<T>(command: RelayCommand, p: Promise<T>): Promise<T> {
    const events = this.deps.events;
    if (events.listenerCount('relayLatency') === 0) return p;
    const t0 = process.hrtime.bigint();
    return p.finally(() => events.emit('relayLatency', command, Number(process.hrtime.bigint() - t0) / 1e9));
  }

  private async openTransaction(address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): Promise<void> {
    const { s } = this;
    try {
      const params = mailParams(address);
      const meta = { clientAddress: s.client?.text ?? '', heloName: session.hostNameAppearsAs || '', mail: params };
      if (this.auth && !session.user) {
        // STARTTLS or XCLIENT ended the identity: its backend connection goes with it
        this.auth.close();
        this.auth = undefined;
      }
      const tx = await (this.auth ? this.auth.begin(meta) : this.deps.relay().begin(meta));
      if (s.closed) {
        tx.abort();
        return;
      }
      this.tx = tx;
      const reply = await this.timed('mail', tx.mailFrom(address.address, params));
      if (reply.code >= 400) {
        this.tx = undefined;
        await tx.release().catch(() => {});
        this.deps.engine.refused(s, 'mail');
        cb(backendError(reply, s.tag));
        return;
      }
      cb();
    } catch (err) {
      this.relayFailure(err);
      if (err instanceof RelayError && err.responseCode === 421) {
        // the authenticated backend session is gone: the client must connect and log in again
        cb(smtpError(421, `4.4.2 ${err.message} [${s.tag}]`));
        return;
      }
      cb(smtpError(451, `4.4.1 Backend unavailable, try again later [${s.tag}]`));
    }
  }

  private async relayRcpt(address: SMTPServerAddress, cb: Callback): Promise<void> {
    const { s } = this;
    const tx = this.tx;
    if (!tx) {
      cb(smtpError(451, `4.3.0 No backend transaction, send MAIL FROM again [${s.tag}]`));
      return;
    }
    try {
      const reply = await this.timed('rcpt', tx.rcptTo(address.address));
      if (reply.code < 400) {
        s.rcpts.push(s.rcpt ?? address.address.toLowerCase());
        cb();
        return;
      }
      if (reply.code >= 500) {
        // The backend does not know this recipient: the event directory-harvest policies count.
        const v = await this.deps.engine.recipientRejected(s);
        if (v.action === 'tempfail' || v.action === 'reject') {
          cb(replyError(v.reply));
          return;
        }
      } else this.deps.engine.refused(s, 'rcpt');
      cb(backendError(reply, s.tag));
    } catch (err) {
      this.relayFailure(err);
      this.tx = undefined;
      void tx.release().catch(() => {});
      cb(smtpError(451, `4.4.1 Backend unavailable, try again later [${s.tag}]`));
    }
  }

  private async relayData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): Promise<void> {
    const { s } = this;
    const tx = this.tx;
    if (!tx) {
      stream.resume();
      cb(smtpError(451, `4.3.0 No backend transaction [${s.tag}]`));
      return;
    }
    // this.tx stays set while the message goes out: a client that vanishes before the backend's
    // final reply has its transaction aborted (close()), so a message it never saw a 250 for
    // is not delivered where that can still be stopped — it will send it again.
    try {
      const reply = await this.timed('data', tx.data(stream, this.received(session)));
      this.tx = undefined;
      void tx.release().catch(() => {});
      if (reply.code >= 200 && reply.code < 300) {
        this.deps.engine.delivered(s, stream.byteLength); // the message as the client sent it
        cb(null, `${reply.enhanced ?? '2.0.0'} ${reply.message || 'Ok'} [${s.tag}]`);
        return;
      }
      this.deps.engine.refused(s, 'data');
      cb(backendError(reply, s.tag));
    } catch (err) {
      this.tx = undefined;
      tx.abort();
      this.relayFailure(err);
      cb(smtpError(451, `4.4.1 Backend failed during DATA, message not accepted, try again later [${s.tag}]`));
    }
  }

  /** The trace header naming the real client address (RFC 5321 §4.4). */
  private received(session: SMTPServerSession): string {
    const { s } = this;
    const helo = session.hostNameAppearsAs || 'unknown';
    const proto = session.transmissionType || 'ESMTP';
    const rcpts = session.envelope.rcptTo;
    const forPart = rcpts.length === 1 ? `\r\n\tfor <${rcpts[0]!.address}>` : '';
    const ip = s.client?.text;
    const addr = ip === undefined ? 'unknown' : s.client!.family === 6 ? `IPv6:${ip}` : ip;
    return `Received: from ${helo} ([${addr}])\r\n\tby ${this.deps.hostname()} (auditgate) with ${proto} id ${s.cid}${forPart};\r\n\t${new Date().toUTCString().replace('GMT', '+0000')}\r\n`;
  }

  private relayFailure(err: unknown): void {
    const { s } = this;
    if (s.closed || err instanceof MessageAbortedError) {
      // the client vanished (mid-message, or before the backend answered): not the backend's fault
      this.deps.logger.debug({ cid: s.cid, client: s.client?.text }, 'client left during the relay');
      return;
    }
    this.deps.stats.relayFailures++;
    // no backend reachable: each backend logged its going down (with why) once already
    const level = err instanceof BackendsUnavailableError ? 'debug' : 'warn';
    this.deps.logger[level]({ cid: s.cid, client: s.client?.text, err: err instanceof Error ? err.message : String(err) }, 'relay failed: client told to retry');
  }
}

/** The ESMTP parameters of a MAIL the relay passes on. */
function mailParams(address: SMTPServerAddress): MailFromParams {
  const args = (address.args || {}) as Record<string, string | boolean>;
  const params: MailFromParams = {};
  if (args.SIZE) params.size = Number(args.SIZE);
  // smtp-server checked the value case-insensitively and keeps it as the client wrote it
  const body = typeof args.BODY === 'string' ? args.BODY.toUpperCase() : undefined;
  if (body === '8BITMIME' || body === '7BIT') params.body = body;
  if (args.SMTPUTF8) params.smtputf8 = true;
  return params;
}

function backendError(reply: SmtpReply, tag: string): Error {
  const enhanced = reply.enhanced ? `${reply.enhanced} ` : '';
  return smtpError(reply.code, `${enhanced}${reply.message} [${tag}]`);
}
