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
 * A transaction deadline (`maxTransactionMs`, server.max_transaction_time), which the idle
 * timeout cannot be for a client that trickles a byte at a time: a clock starts with the first
 * byte of a command outside a transaction and stops at a reply that leaves no transaction open
 * (a refused MAIL, any command outside one) or when the transaction ends (the final reply to
 * its message, RSET, HELO/EHLO). When it runs out the client gets 421 and the connection goes
 * (which also ends a message stream the relay was reading, so nothing half-sent is delivered);
 * while the client waits for us (a backend's reply) it is not cut off, and a transaction that
 * ends with that reply is not cut off at all. The connection emits 'deadline' when it cuts.
 *
 * The EHLO reply is trimmed by `HeloHook.extensions` (what the relay can pass on).
 */
import type net from 'node:net';
import type { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
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
  /** Milliseconds a transaction may take (see above). */
  maxTransactionMs: number;
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
  /** The transaction clock, while it runs. */
  private deadline: NodeJS.Timeout | undefined;
  /** The clock ran out while the client waited for us: cut at our next reply, unless it ends the transaction. */
  private overdue = false;

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
    this.replied();
  }

  // ---- the transaction deadline -------------------------------------------------------------

  override _createParser(): SMTPStream {
    const parser = super._createParser();
    // every byte the client sends passes here, on the plain socket and after STARTTLS alike
    const write = parser._write.bind(parser);
    parser._write = (chunk, encoding, next) => {
      if (chunk.length > 0) this.startClock();
      write(chunk, encoding, next);
    };
    return parser;
  }

  override _resetSession(): void {
    super._resetSession();
    this.stopClock(); // the transaction is over (message answered, RSET, HELO/EHLO, STARTTLS)
  }

  private startClock(): void {
    if (this.deadline !== undefined || this.overdue || this._closing) return;
    this.deadline = setTimeout(() => this.expired(), this.limits.maxTransactionMs);
    this.deadline.unref();
  }

  private stopClock(): void {
    clearTimeout(this.deadline);
    this.deadline = undefined;
    this.overdue = false;
  }

  /** A reply went out: a reply that leaves no transaction open stops the clock. */
  private replied(): void {
    if (this.overdue) {
      // after the final reply to a message the library resets the session (stopping the clock)
      // in the same turn: only a transaction still open is cut
      queueMicrotask(() => {
        if (this.overdue) this.cutOff();
      });
      return;
    }
    if (this.deadline !== undefined && !this.session.envelope?.mailFrom && !this._dataStream) this.stopClock();
  }

  private expired(): void {
    this.deadline = undefined;
    if (this._closing) return;
    const waitingForUs = this._handlerPending || (Boolean(this._dataStream) && this._parser !== false && !this._parser._dataMode);
    if (waitingForUs) this.overdue = true;
    else this.cutOff();
  }

  private cutOff(): void {
    this.stopClock();
    if (this._closing) return;
    const seconds = Math.round(this.limits.maxTransactionMs / 1000);
    this.emit('deadline', this.limits.maxTransactionMs);
    super.send(421, `4.4.2 Transaction took longer than ${seconds} s, closing the connection [${this.id}@${this.name}]`);
    // A client still trickling keeps its side open: drop the connection once the 421 is out.
    const socket = this._socket;
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
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
