/**
 * smtp-server's connection class with what the library lacks: a HELO/EHLO hook, and per-session
 * bounds on transactions, errors and junk commands.
 *
 * The library's own handler checks the command and builds its 250 reply; that reply is held
 * back while `HeloHook.onHelo` decides. A refusal replaces the 250 and forgets the HELO name
 * (so MAIL needs a new HELO); a delayed `proceed` is a tarpit. The parser reads the next
 * (pipelined) command only once the reply is out. Being a subclass (not per-connection
 * patching) keeps every connection object the same shape for the library's hot code.
 *
 * Bounds (SessionLimits), so that one connection cannot feed the series an unbounded stream of
 * events (a new sender-domain key per MAIL, a refused RCPT per line): more MAIL commands than
 * `maxTransactions` get a 421 and the connection closes; every 4xx/5xx reply counts as an error
 * and past `maxErrors` the connection gets a 421 and closes (Postfix's smtpd_hard_error_limit);
 * RSET, NOOP, VRFY, EXPN, HELP, HELO and EHLO past `maxJunkCommands` each count as an error
 * (Postfix's smtpd_junk_command_limit).
 *
 * The EHLO reply is trimmed by `HeloHook.extensions` (what the relay can pass on).
 */
import type net from 'node:net';
import type { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SmtpError } from './smtp-error.js';

export interface HeloHook {
  /** Decide on a HELO/EHLO the library accepted: call exactly one of proceed / refuse, now or later. */
  onHelo(conn: GatewayConnection, proceed: () => void, refuse: (err: SmtpError) => void): void;
  /** The EHLO reply's lines (greeting line first) as the client is to see them. */
  extensions(lines: string[]): string[];
}

export interface SessionLimits {
  maxTransactions: number;
  maxErrors: number;
  maxJunkCommands: number;
}

type Reply = [code: number, data: string | string[], context?: unknown];

const JUNK_COMMANDS = new Set(['RSET', 'NOOP', 'VRFY', 'EXPN', 'HELP', 'HELO', 'EHLO']);

export class GatewayConnection extends SMTPConnection {
  /** Set while the library's HELO/EHLO handler runs: its 250 is held, not sent. */
  private holding = false;
  private held: Reply | undefined = undefined;

  private transactions = 0;
  private errors = 0;
  private junk = 0;

  constructor(
    server: SMTPServer,
    socket: net.Socket,
    options: Record<string, unknown>,
    private readonly hook: HeloHook,
    private readonly limits: SessionLimits,
  ) {
    super(server, socket, options);
  }

  override send(code: number, data: string | string[], context?: unknown): void {
    if (this.holding && this.held === undefined && code === 250) {
      this.held = [code, data, context];
      return;
    }
    super.send(code, data, context);
    if (code >= 400 && code !== 421) this.countError();
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    // Continuation lines (AUTH LOGIN) and plaintext queued behind STARTTLS are not commands.
    if (this._nextHandler || this._upgrading) {
      super._onCommand(command, callback);
      return;
    }
    const end = command.indexOf(0x20);
    const name = command.toString('latin1', 0, end < 0 ? command.length : end).toUpperCase();
    if (name === 'MAIL' && ++this.transactions > this.limits.maxTransactions) {
      super.send(421, `4.7.0 Too many transactions in one session (at most ${this.limits.maxTransactions}), connect again to send more [${this.id}@${this.name}]`);
      return;
    }
    if (JUNK_COMMANDS.has(name) && ++this.junk > this.limits.maxJunkCommands) this.countError();
    if (!this._closing) super._onCommand(command, callback);
  }

  /** One more error reply (or junk command past its limit); past maxErrors the connection goes. */
  private countError(): void {
    if (++this.errors <= this.limits.maxErrors || this._closing) return;
    super.send(421, `4.7.0 Too many errors in one session, closing the connection [${this.id}@${this.name}]`);
  }

  /** Drops the connection's socket (TLS or plain) at once, after an error that ended it. */
  destroySocket(): void {
    if (!this._socket.destroyed) this._socket.destroy();
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    this.hooked(command, callback, (c, cb) => super.handler_EHLO(c, cb));
  }

  override handler_HELO(command: Buffer, callback: () => void): void {
    this.hooked(command, callback, (c, cb) => super.handler_HELO(c, cb));
  }

  private takeHeld(): Reply | undefined {
    const reply = this.held;
    this.held = undefined;
    return reply;
  }

  private hooked(command: Buffer, callback: () => void, library: (command: Buffer, callback: () => void) => void): void {
    let libraryDone = false;
    let decided = false;
    const finish = (): void => {
      if (libraryDone && decided) callback();
    };
    this.holding = true;
    this.held = undefined;
    try {
      library(command, () => {
        libraryDone = true;
        finish();
      });
    } finally {
      this.holding = false;
    }
    const reply = this.takeHeld();
    if (reply === undefined) {
      // the library refused the command itself (501 syntax): nothing to decide
      decided = true;
      finish();
      return;
    }
    // the session's own server options (a reload builds new ones for new sessions only)
    if (Array.isArray(reply[1])) {
      if (!this.secure && !this._server.options.allowInsecureAuth) {
        // smtp-server advertises AUTH before STARTTLS and refuses it there; say nothing of it
        // until the session is encrypted (RFC 4954 §4: no plaintext mechanisms in the clear)
        reply[1] = reply[1].filter((line) => !/^AUTH /i.test(line));
      }
      reply[1] = this.hook.extensions(reply[1]);
    }
    this.hook.onHelo(
      this,
      () => {
        super.send(reply[0], reply[1], reply[2]);
        decided = true;
        finish();
      },
      (err) => {
        this.hostNameAppearsAs = false;
        this.session.hostNameAppearsAs = '';
        super.send(err.responseCode, err.message);
        decided = true;
        finish();
      },
    );
  }
}
