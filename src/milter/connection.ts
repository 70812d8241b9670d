/**
 * One MTA connection to the milter front: option negotiation, then the MTA's sessions one after
 * another (QUIT_NC reuses the connection), each an engine Session. A thin translator: commands
 * fill the session and run stages; verdicts become replies.
 *
 *   CONNECT → connect · HELO → helo · MAIL → mail ({auth_authen} is {auth_user})
 *   RCPT → rcpt (a recipient the MTA itself rejected, sent with SMFIP_RCPT_REJ: rcpt_rejected)
 *   DATA → continue · end of message → data ({msg_size} when the MTA sends it; Postfix has no such macro), then receptions
 *   ABORT → the transaction ends, the session goes on · QUIT / QUIT_NC / a dropped connection → the session ends
 *
 * Verdicts: continue and accept → SMFIR_CONTINUE (an accept at connect trusts the session in the
 * engine, so later stages keep recording, as with the SMTP proxy; SMFIR_ACCEPT would stop the
 * MTA from telling us about them); tempfail / reject → SMFIR_REPLYCODE with the reply from the
 * one reply table; tarpit → the reply is held back, with SMFIR_PROGRESS meanwhile.
 *
 * No macro lists are sent in the negotiation: Postfix empties every stage not listed, and its
 * defaults (like Sendmail's) already carry j, i, {auth_authen} and {rcpt_mailer}.
 */
import type net from 'node:net';
import { MilterProtocolError } from '../errors.js';
import { parseClientAddress } from '../series/address.js';
import { connectionId } from '../smtp/connection-id.js';
import type { Stage } from '../config/vocabulary.js';
import { endTransaction, setRecipient, setSender, type Session, type Verdict } from '../audit/session.js';
import { andThen, MtaConnection, type Decoded, type HoldTick, type MtaConnectionDeps } from '../mta/connection.js';
import { MilterDecoder } from './codec.js';
import { expectsReply, negotiate, type MilterWants, type Negotiation } from './negotiate.js';
import { SMFIC, type ConnectCommand, type MilterCommand } from './protocol.js';
import { encodeContinue, encodeOptneg, encodeProgress, encodeReplyCode } from './replies.js';

/** What the front asks of the MTA: the default events (connect … data) and the recipients it rejected. */
export const MILTER_WANTS: MilterWants = { rejectedRcpts: true };

/** SMFIR_PROGRESS while a tarpit holds an answer: every third of the delay, 1 to 10 s apart (Postfix's milter_command_timeout is 30 s). */
export function progressEvery(delayMs: number): number {
  return Math.min(10_000, Math.max(1_000, Math.floor(delayMs / 3)));
}

/** A verdict as a milter reply. */
export function milterReply(v: Verdict): Buffer {
  if (v.action !== 'tempfail' && v.action !== 'reject') return encodeContinue();
  // the reply table's text is one line; a policy's own reply could still hold a tab
  // eslint-disable-next-line no-control-regex
  return encodeReplyCode(v.reply.code, `${v.reply.enhanced} ${v.reply.text}`.replace(/[\x00-\x1f\x7f]/g, ' '));
}

/** `<a@b>` → `a@b`, `<>` → `` (the null sender). */
export function envelopeAddress(text: string): string {
  const t = text.trim();
  return t.startsWith('<') && t.endsWith('>') ? t.slice(1, -1) : t;
}

const letsThrough = (v: Verdict): boolean => v.action !== 'tempfail' && v.action !== 'reject';

export class MilterConnection extends MtaConnection<MilterCommand> {
  private readonly decoder = new MilterDecoder();
  private negotiation: Negotiation | undefined;
  private s: Session | undefined;
  /** The macros the MTA sent for each command (SMFIC_* character), for the current session. */
  private readonly macros = new Map<string, ReadonlyMap<string, string>>();

  constructor(socket: net.Socket, deps: MtaConnectionDeps) {
    super(socket, deps);
  }

  protected decode(chunk: Buffer): Decoded<MilterCommand> {
    const r = this.decoder.push(chunk);
    return r.error ? { items: r.messages, error: r.error } : { items: r.messages };
  }

  protected finish(): MilterProtocolError | undefined {
    return this.decoder.end();
  }

  protected describe(): Record<string, unknown> {
    return { cid: this.s?.cid, client: this.s?.client?.text, peer: this.socket.remoteAddress ?? 'unix' };
  }

  protected release(): void {
    this.endSession();
  }

  /** An MTA that closed its side is gone (milter MTAs never half-close while they wait). */
  protected answersAfterEnd(): boolean {
    return false;
  }

  protected handle(c: MilterCommand): void | Promise<void> {
    if (c.type === 'optneg') return this.negotiate(c);
    const n = this.negotiation;
    if (!n) return this.outOfOrder(c, 'before option negotiation');
    if (c.type === 'macro') {
      this.macros.set(c.command, c.macros);
      return;
    }
    if (c.type === 'connect') return this.connect(c);
    const s = this.s;
    switch (c.type) {
      case 'helo':
        if (!s) return this.outOfOrder(c, 'before CONNECT');
        s.helo = c.name;
        return this.run(c, s, 'helo');
      case 'mail':
        if (!s) return this.outOfOrder(c, 'before CONNECT');
        setSender(s, envelopeAddress(c.sender));
        s.authUser = this.macro(SMFIC.MAIL, '{auth_authen}') || undefined;
        return this.run(c, s, 'mail');
      case 'rcpt':
        if (!s) return this.outOfOrder(c, 'before CONNECT');
        setRecipient(s, envelopeAddress(c.recipient));
        if (this.macro(SMFIC.RCPT, '{rcpt_mailer}') === 'error') return this.rejectedByMta(c, s);
        return this.run(c, s, 'rcpt', (v) => {
          if (letsThrough(v)) s.rcpts.push(s.rcpt ?? '');
        });
      case 'eom': {
        if (!s) return this.outOfOrder(c, 'before CONNECT');
        const size = Number(this.macro(SMFIC.BODYEOB, '{msg_size}') ?? NaN);
        if (Number.isSafeInteger(size) && size >= 0) s.messageSize = size;
        return this.run(c, s, 'data', (v) => {
          if (letsThrough(v)) this.deps.engine.delivered(s);
        });
      }
      case 'abort':
        if (s) endTransaction(s);
        return;
      case 'quit':
        this.endSession();
        this.socket.end();
        return;
      case 'quit_nc':
        this.endSession();
        return;
      default:
        // DATA (the data stage runs at end of message, with the message), and anything we asked
        // not to get but an MTA sent anyway
        this.answer(c, encodeContinue());
    }
  }

  private negotiate(c: Extract<MilterCommand, { type: 'optneg' }>): void {
    if (this.s) return this.outOfOrder(c, 'during a session');
    const n = negotiate(c, MILTER_WANTS);
    if (n instanceof MilterProtocolError) return this.protocolError(n);
    this.negotiation = n;
    this.write(encodeOptneg(n.reply));
  }

  private connect(c: ConnectCommand): void | Promise<void> {
    // a new CONNECT without QUIT_NC: the MTA moved on (the macros just sent for it stay)
    if (this.s) this.deps.engine.close(this.s);
    // unix and unknown families have no address to count
    const address = c.family === 'ipv4' || c.family === 'ipv6' ? c.address : undefined;
    const s = this.deps.engine.open('milter', connectionId(), address === undefined ? undefined : parseClientAddress(address));
    this.s = s;
    this.deps.stats.events++;
    this.deps.logger.debug({ cid: s.cid, client: s.client?.text, hostname: c.hostname, mta: this.macro(SMFIC.CONNECT, 'j') }, 'milter session');
    return this.run(c, s, 'connect');
  }

  /** Runs a stage and answers with its verdict (after a tarpit, with SMFIR_PROGRESS while it holds). */
  private run(c: MilterCommand, s: Session, stage: Stage, after?: (v: Verdict) => void): void | Promise<void> {
    return andThen(this.decide(s, stage, this.progress), (v) => {
      after?.(v);
      this.answer(c, milterReply(v));
    });
  }

  private readonly progress = (delayMs: number): HoldTick => ({ everyMs: progressEvery(delayMs), send: () => this.write(encodeProgress()) });

  /** A recipient the MTA refused itself: the rcpt_rejected event (directory-harvest counts); the MTA's answer stands. */
  private rejectedByMta(c: MilterCommand, s: Session): Promise<void> {
    return this.deps.engine.recipientRejected(s).then(
      () => this.answer(c, encodeContinue()),
      (err: unknown) => {
        this.deps.logger.error({ ...this.describe(), err }, 'rcpt_rejected stage failed');
        this.answer(c, encodeContinue());
      },
    );
  }

  /** Writes a reply where the MTA waits for one. */
  private answer(c: MilterCommand, reply: Buffer): void {
    if (this.negotiation && expectsReply(this.negotiation, c)) this.write(reply);
  }

  private macro(command: string, name: string): string | undefined {
    return this.macros.get(command)?.get(name);
  }

  private endSession(): void {
    if (this.s) this.deps.engine.close(this.s);
    this.s = undefined;
    this.macros.clear();
  }

  private outOfOrder(c: MilterCommand, when: string): void {
    this.protocolError(new MilterProtocolError('out-of-order', `${c.type} ${when}`));
  }
}
