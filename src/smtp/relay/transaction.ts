/**
 * One transaction on a backend connection, in lockstep with the client: MAIL, RCPT, the message
 * (DATA, or BDAT when the backend offers CHUNKING), then RSET and home to the pool, or closed.
 * MAIL and RCPT parameters the backend cannot take as sent are refused here, never dropped.
 */
import type { Logger } from 'pino';
import { MessageAbortedError, RelayError } from '../../errors.js';
import type { BackendConnection } from './backend-client.js';
import { capabilitiesOf, mailRefusal, rcptRefusal, type MailFromParams } from './capabilities.js';
import { UNSAFE_ADDRESS, invalidAddress, localReply } from './common.js';
import { createDataEncoder } from './data-normalize.js';
import { ChunkRefusedError, EarlyReplyError, MessageStreamError, MessageTooBigError, drainMessage, pumpMessage } from './pump.js';
import { formatReply, type SmtpReply } from './reply.js';
import type { BeginMeta, RelayTransaction } from './types.js';

/** A connection and the backend it belongs to (where it goes home). */
export interface Lease {
  conn: BackendConnection;
  backend: { readonly url: string; pool(conn: BackendConnection): void };
  /** It came from the pool (and may have died there). */
  reused: boolean;
}

/** What a transaction needs of the relay it belongs to. */
export interface TransactionHost {
  readonly chunking: boolean;
  readonly timeoutMs: number;
  readonly logger: Logger | undefined;
  /** A connection to the first backend that can be reached; a RelayError 451 when none. */
  lease(needs?: MailFromParams): Promise<Lease>;
  transactionEnded(): void;
  countFailure(): void;
  countMessage(bytes: number): void;
}

export interface TransactionOptions {
  /** Where a healthy connection goes at release (default: its backend's pool). */
  home?: (conn: BackendConnection) => void;
  /** Called once when the transaction is over: after release (and its RSET) or abort. */
  ended?: () => void;
}

export class SmtpTransaction implements RelayTransaction {
  dataBytes = 0;
  private done = false;
  private busy = false;
  /** The transaction hit a transport / protocol error: the connection must not be pooled. */
  private failed = false;
  private commands = 0;
  /** True once a message was accepted: nothing is left to RSET. */
  private clean = false;
  /** abort() was called (the client left): failures after it are not the backend's. */
  private aborted = false;

  private conn: BackendConnection;
  private backend: Lease['backend'];
  private reused: boolean;
  private readonly ended: (() => void) | undefined;
  /** An own home (an authenticated session's), else the backend's pool. */
  private readonly ownHome: ((conn: BackendConnection) => void) | undefined;

  constructor(
    private readonly relay: TransactionHost,
    lease: Lease,
    private readonly meta: BeginMeta,
    options: TransactionOptions = {},
  ) {
    this.conn = lease.conn;
    this.backend = lease.backend;
    this.reused = lease.reused;
    this.ownHome = options.home;
    this.ended = options.ended;
  }

  mailFrom(from: string, params: MailFromParams = {}): Promise<SmtpReply> {
    return this.step(async () => {
      if (UNSAFE_ADDRESS.test(from)) return invalidAddress('MAIL');
      try {
        return await this.sendMail(from, params);
      } catch (err) {
        // A pooled connection may have died between the pool check and now; MAIL has no side
        // effects and nothing was accepted yet, so once more on a fresh connection — to this
        // backend, or to the next one if it is down now.
        if (!(err instanceof RelayError) || !this.reused || this.commands > 1 || this.ownHome) throw err;
        this.relay.logger?.debug({ err, backend: this.backend.url }, 'pooled backend connection failed, reconnecting');
        this.conn.destroy();
        let lease: Lease;
        try {
          lease = await this.relay.lease(params);
        } catch (openErr) {
          this.failed = true; // the backends counted and logged their failures already
          throw openErr;
        }
        this.conn = lease.conn;
        this.backend = lease.backend;
        this.reused = lease.reused;
        return await this.sendMail(from, params);
      }
    });
  }

  /** MAIL with every parameter the client gave, or the local refusal when the backend lacks one. */
  private async sendMail(from: string, params: MailFromParams): Promise<SmtpReply> {
    const refusal = mailRefusal(from, params, capabilitiesOf(this.conn.extensions));
    if (refusal) {
      this.relay.logger?.info({ client: this.meta.clientAddress, backend: this.backend.url, reply: formatReply(refusal) }, 'MAIL refused: the backend cannot take it as sent');
      return refusal;
    }
    return this.command(this.mailLine(from, params));
  }

  rcptTo(to: string): Promise<SmtpReply> {
    return this.step(async () => {
      if (UNSAFE_ADDRESS.test(to)) return invalidAddress('RCPT');
      return rcptRefusal(to, capabilitiesOf(this.conn.extensions)) ?? this.command(`RCPT TO:<${to}>`);
    });
  }

  data(message: NodeJS.ReadableStream, prefix: string): Promise<SmtpReply> {
    return this.step(async () => {
      this.dataBytes = 0;
      const reply = this.relay.chunking && this.conn.extensions.has('CHUNKING') ? await this.bdat(message, prefix) : await this.dataCommand(message, prefix);
      if (reply.code >= 200 && reply.code < 300) {
        this.relay.countMessage(this.dataBytes);
        // RFC 5321 4.1.1.4: the accepted message ends the transaction, the server's state is clear
        this.clean = true;
      } else if (reply.code < 400) {
        return this.protocolFailure(`unexpected final reply to the message: ${formatReply(reply)}`);
      }
      return reply;
    });
  }

  /** DATA, 354, the dot-stuffed message and its terminator; resolves with the final reply. */
  private async dataCommand(message: NodeJS.ReadableStream, prefix: string): Promise<SmtpReply> {
    let go: SmtpReply;
    try {
      go = await this.command('DATA');
    } catch (err) {
      drainMessage(message);
      throw err;
    }
    if (go.code !== 354) {
      drainMessage(message);
      if (go.code >= 400) return go;
      return this.protocolFailure(`unexpected reply to DATA: ${formatReply(go)}`);
    }
    const conn = this.conn;
    const encoder = createDataEncoder();
    const timeoutMs = this.relay.timeoutMs;
    try {
      await pumpMessage(
        message,
        prefix,
        encoder,
        (chunk) => conn.write(chunk, timeoutMs),
        () => {
          if (conn.hasUnreadReply) throw new EarlyReplyError(conn.takeUnreadReply());
        },
      );
    } catch (err) {
      if (err instanceof EarlyReplyError && err.reply && err.reply.code >= 400) {
        this.failed = true;
        conn.destroy('message transfer aborted');
        this.relay.logger?.warn({ reply: formatReply(err.reply) }, 'backend replied in the middle of DATA');
        return err.reply;
      }
      return this.transferFailed(err);
    }
    this.dataBytes = encoder.bytesOut;
    return this.readReply();
  }

  /**
   * RFC 3030 BDAT: the message (line endings normalized, no dot-stuffing, no terminator) in
   * chunks of at most FLUSH_BYTES, each "BDAT n" and its bytes in one write and its reply
   * awaited; the last is "BDAT n LAST" and its reply is the final one. A small message takes
   * one round trip where DATA takes two.
   */
  private async bdat(message: NodeJS.ReadableStream, prefix: string): Promise<SmtpReply> {
    const encoder = createDataEncoder({ dotStuff: false, terminate: false });
    let final: SmtpReply | undefined;
    try {
      await pumpMessage(message, prefix, encoder, async (chunk, last) => {
        const reply = await this.chunk(`BDAT ${chunk.length}${last ? ' LAST' : ''}`, chunk);
        if (last) final = reply;
        else if (reply.code !== 250) throw new ChunkRefusedError(reply);
      });
    } catch (err) {
      if (err instanceof ChunkRefusedError) {
        // The backend discarded the message (RFC 3030 §2); release() sends RSET.
        if (err.reply.code >= 400) return err.reply;
        return this.protocolFailure(`unexpected reply to BDAT: ${formatReply(err.reply)}`);
      }
      return this.transferFailed(err);
    }
    this.dataBytes = encoder.bytesOut;
    if (!final) return this.protocolFailure('no reply to BDAT LAST');
    return final;
  }

  /** A message transfer that broke off: the connection goes; a 552 for an oversized message, else a 451 RelayError. */
  private transferFailed(err: unknown): SmtpReply {
    this.failed = true;
    this.conn.destroy('message transfer aborted');
    if (err instanceof MessageTooBigError) {
      return localReply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
    }
    if (err instanceof MessageStreamError || this.aborted) {
      // the client's side broke off, or the client left and the transaction was aborted: not a backend failure
      throw new MessageAbortedError('Message transfer aborted, try again later', 451, { cause: err });
    }
    this.relay.countFailure();
    if (err instanceof RelayError) throw err;
    throw new RelayError('Backend transfer failed, try again later', 451, { cause: err });
  }

  async release(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.relay.transactionEnded();
    try {
      await this.finish();
    } finally {
      this.ended?.();
    }
  }

  /** The connection after the transaction: home if healthy (RSET first unless clean), else closed. */
  private async finish(): Promise<void> {
    const conn = this.conn;
    if (this.failed || this.busy || conn.broken) {
      conn.destroy('transaction failed');
      return;
    }
    if (this.clean) {
      this.home(conn);
      return;
    }
    try {
      const reply = await conn.command('RSET', this.relay.timeoutMs);
      if (reply.code === 250) {
        this.home(conn);
        return;
      }
      this.relay.logger?.debug({ reply: formatReply(reply) }, 'backend refused RSET, closing');
    } catch (err) {
      this.relay.logger?.debug({ err }, 'backend RSET failed, closing');
    }
    conn.destroy('RSET failed');
  }

  abort(): void {
    if (this.done) return; // released already: the connection may be back in the pool
    this.aborted = true;
    this.failed = true;
    this.conn.destroy('client vanished');
    this.done = true;
    this.relay.transactionEnded();
    this.ended?.();
  }

  private home(conn: BackendConnection): void {
    if (this.ownHome) this.ownHome(conn);
    else this.backend.pool(conn);
  }

  /**
   * The MAIL line: sendMail() checked that the backend offers what the parameters ask for. SIZE
   * is advisory (dropped for a backend without it, which then sees the message itself), and so
   * is BODY=7BIT (the default of a backend without 8BITMIME).
   */
  private mailLine(from: string, params: MailFromParams): string {
    const ext = this.conn.extensions;
    let line = `MAIL FROM:<${from}>`;
    if (params.size !== undefined && ext.has('SIZE') && Number.isSafeInteger(params.size) && params.size >= 0) {
      line += ` SIZE=${params.size}`;
    }
    if (params.body === '8BITMIME' || (params.body === '7BIT' && ext.has('8BITMIME'))) line += ` BODY=${params.body}`;
    if (params.smtputf8 === true) line += ' SMTPUTF8';
    return line;
  }

  /** Runs one step; steps never overlap, and a transport error marks the transaction failed. */
  private async step(fn: () => Promise<SmtpReply>): Promise<SmtpReply> {
    if (this.done) throw new RelayError('Relay transaction already ended', 451);
    if (this.busy) throw new RelayError('Relay transaction busy (commands must not overlap)', 451);
    this.busy = true;
    try {
      return await fn();
    } catch (err) {
      // A client that left (mid-message, or before the backend answered) aborted the
      // transaction itself: that is not a backend failure, and not worth a warning.
      const clientLeft = this.aborted || err instanceof MessageAbortedError;
      if (!this.failed && !clientLeft) this.relay.countFailure();
      this.failed = true;
      this.conn.destroy('transaction failed');
      if (err instanceof RelayError) {
        const meta = { err, client: this.meta.clientAddress, backend: this.backend.url };
        if (clientLeft) this.relay.logger?.debug(meta, 'relay transaction ended: the client left');
        else this.relay.logger?.warn(meta, 'relay transaction failed');
        throw err;
      }
      throw new RelayError('Backend transfer failed, try again later', 451, { cause: err });
    } finally {
      this.busy = false;
    }
  }

  private async command(line: string): Promise<SmtpReply> {
    this.commands++;
    return this.closing(await this.conn.command(line, this.relay.timeoutMs));
  }

  private async chunk(line: string, data: Buffer): Promise<SmtpReply> {
    this.commands++;
    return this.closing(await this.conn.commandWithData(line, data, this.relay.timeoutMs));
  }

  private async readReply(): Promise<SmtpReply> {
    return this.closing(await this.conn.readReply(this.relay.timeoutMs));
  }

  /** A 421 means the backend is closing the connection: it must not be reused. */
  private closing(reply: SmtpReply): SmtpReply {
    if (reply.code === 421) this.failed = true;
    return reply;
  }

  private protocolFailure(what: string): never {
    this.failed = true;
    this.relay.countFailure();
    this.conn.destroy(what);
    throw new RelayError(`Backend protocol error (${what}), try again later`, 451);
  }
}
