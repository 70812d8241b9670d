/**
 * The backend side of the lockstep relay (SPEC §3).
 *
 * The gateway calls `relay.begin()` at MAIL FROM, forwards MAIL / each RCPT and answers the
 * client with the reply it gets here, streams DATA with `data()`, and answers 250 only when
 * `data()` resolved with a 2xx reply. Transport failures of any kind reject with a RelayError
 * whose responseCode is 451, so the client can never get a 250 for mail the backend did not
 * take. Backend replies — 4xx/5xx included — resolve as SmtpReply.
 *
 * Two kinds: `smtp` (a real backend over TCP, with a small pool of idle connections) and `dir`
 * (each message becomes an .eml file, written atomically; for trying the gateway out).
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { MessageAbortedError, RelayError } from '../../errors.js';
import { PRIVATE_DIR_MODE, createDurable, type DurableFile } from '../../fs/durable-file.js';
import { BackendConnection, formatReply, type SmtpReply } from './backend-client.js';
import { createDataEncoder, type DataEncoder } from './data-normalize.js';

export type { SmtpReply } from './backend-client.js';

export interface MailFromParams {
  size?: number;
  body?: '8BITMIME' | '7BIT';
  smtputf8?: boolean;
}

export interface RelayTransaction {
  mailFrom(from: string, params?: MailFromParams): Promise<SmtpReply>;
  rcptTo(to: string): Promise<SmtpReply>;
  /**
   * Sends DATA; `message` is the message body as smtp-server hands it to onData (already
   * dot-unstuffed, the terminating "." removed). `prefix` (e.g. a Received: header,
   * CRLF-terminated) goes first. Resolves with the backend's final reply.
   *
   * The message is re-encoded on the way (every bare CR / bare LF becomes CRLF, dot-stuffing,
   * our own end-of-data). If the stream does not end normally (client vanished) the backend
   * connection is dropped before any end-of-data is sent and this rejects with a 451
   * RelayError. If the stream is an smtp-server stream whose `sizeExceeded` flag gets set, the
   * backend connection is dropped likewise and the reply is a local 552 5.3.4. After a failure
   * the rest of the message stream is drained (resumed) so smtp-server can finish reading it.
   */
  data(message: NodeJS.ReadableStream, prefix: string): Promise<SmtpReply>;
  /** Ends the transaction: RSET and return the connection to the pool if healthy, else close it. */
  release(): Promise<void>;
  /** Drops the backend connection at once (the client vanished). */
  abort(): void;
  /** Bytes of the last data() sent to the backend / written to the file (after encoding). */
  readonly dataBytes: number;
}

export interface RelayStats {
  kind: 'smtp' | 'dir';
  /** Idle pooled connections (always 0 for dir). */
  idle: number;
  /** Transactions begun and not yet released / aborted. */
  active: number;
  /** Backend connections opened (connect + greeting + EHLO succeeded). */
  opened: number;
  /** Transactions that got a pooled connection. */
  reused: number;
  transactions: number;
  /** Messages the backend accepted (2xx after DATA) / files written. */
  messages: number;
  /** Bytes of accepted messages (after encoding). */
  bytes: number;
  /** Transport-level failures (RelayError thrown). */
  failures: number;
}

export interface RelayAuthResult {
  /** The backend's reply to AUTH, or a local one (4xx when AUTH cannot be checked now). */
  reply: SmtpReply;
  /** Set when the backend accepted (235): this client's transactions go through it. */
  session?: AuthenticatedRelay;
}

/** A backend connection authenticated as one client's user, kept for that client alone. */
export interface AuthenticatedRelay {
  begin(meta: { clientAddress: string; heloName?: string }): Promise<RelayTransaction>;
  /** Ends the backend session (QUIT); called when the client's session ends. */
  close(): void;
}

export interface Relay {
  begin(meta: { clientAddress: string; heloName?: string }): Promise<RelayTransaction>;
  /**
   * Checks a client's AUTH PLAIN / LOGIN credentials with the backend (AUTH PLAIN on a backend
   * connection). Transport failures reject with a 451 RelayError.
   */
  authenticate(meta: { clientAddress: string }, username: string, password: string): Promise<RelayAuthResult>;
  /** Closes idle connections; transactions still running are closed (not pooled) at release. */
  close(): Promise<void>;
  stats(): RelayStats;
}

export interface SmtpRelayOptions {
  kind: 'smtp';
  host: string;
  port: number;
  /** Bounds connect, greeting, every reply and every stalled write. */
  timeoutMs: number;
  /** Most idle connections kept. 0 disables pooling. */
  poolSize: number;
  /** Send messages with BDAT when the backend offers CHUNKING (default true). */
  chunking?: boolean;
  /** Our EHLO name. */
  hostname: string;
  logger?: Logger;
}

export interface DirRelayOptions {
  kind: 'dir';
  dir: string;
  hostname: string;
  logger?: Logger;
}

export type RelayOptions = SmtpRelayOptions | DirRelayOptions;

export function createRelay(opts: RelayOptions): Relay {
  return opts.kind === 'smtp' ? new SmtpRelay(opts) : new DirRelay(opts);
}

/** An idle pooled connection is closed after this long. */
export const POOL_IDLE_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// shared helpers

// eslint-disable-next-line no-control-regex
const UNSAFE_ADDRESS = /[\x00-\x1f\x7f]/;

function localReply(code: number, enhanced: string, message: string): SmtpReply {
  return { code, enhanced, message, lines: [message] };
}

/** The message stream ended without 'end' (client vanished) or errored. */
class MessageStreamError extends Error {}
/** The backend refused a BDAT chunk before the last one. */
class ChunkRefusedError extends Error {
  constructor(readonly reply: SmtpReply) {
    super('backend refused a BDAT chunk');
  }
}
/** smtp-server flagged the message as over the size limit. */
class MessageTooBigError extends Error {}
/** The backend said something while we were still sending the message. */
class EarlyReplyError extends Error {
  constructor(readonly reply: SmtpReply | undefined) {
    super('backend replied before the end of the message');
  }
}

function sizeExceeded(message: NodeJS.ReadableStream): boolean {
  return (message as { sizeExceeded?: unknown }).sizeExceeded === true;
}

function drainMessage(message: NodeJS.ReadableStream): void {
  const r = message as Partial<Readable>;
  if (r.destroyed === true || r.readableEnded === true) return;
  message.resume();
}

/** Encoded bytes gathered before a write while the message is still arriving. */
const FLUSH_BYTES = 64 * 1024;

/**
 * Encodes prefix + message with `encoder` into `sink`, with backpressure both ways. Resolves
 * once everything the encoder produced (its terminator included) went through the sink; the
 * sink's final call, after the message ended, has `last` set (its chunk may be empty).
 *
 * Output is gathered and written once per event-loop turn (or every FLUSH_BYTES), so a small
 * message — prefix, body and terminator — goes out in one write. Rejects with
 * MessageStreamError if the message did not end normally; the terminator is then never
 * produced, and the rest of the message is drained so smtp-server can finish reading it.
 */
function pumpMessage(
  message: NodeJS.ReadableStream,
  prefix: string,
  encoder: DataEncoder,
  sink: (chunk: Buffer, last: boolean) => Promise<void> | undefined,
  check?: () => void,
): Promise<void> {
  const r = message as Readable;
  return new Promise<void>((resolve, reject) => {
    let parts: Buffer[] = [];
    let size = 0;
    let ended = false;
    let writing = false;
    let settled = false;
    let scheduled: NodeJS.Immediate | undefined;

    const settle = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      if (scheduled) clearImmediate(scheduled);
      r.removeListener('data', onData);
      r.removeListener('end', onEnd);
      r.removeListener('error', onError);
      r.removeListener('close', onClose);
      if (err === undefined) {
        resolve();
        return;
      }
      drainMessage(message);
      reject(err);
    };
    const gather = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      parts.push(chunk);
      size += chunk.length;
    };
    /** Hands what was gathered to the sink; once ended, the final call has last = true (even when empty). */
    const flush = (): void => {
      scheduled = undefined;
      if (settled || writing) return;
      if (size === 0 && !ended) return;
      const last = ended;
      const chunk = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
      parts = [];
      size = 0;
      let pending: Promise<void> | undefined;
      try {
        check?.();
        pending = sink(chunk, last);
      } catch (err) {
        settle(err);
        return;
      }
      if (!pending) {
        if (last) settle();
        return;
      }
      writing = true;
      if (!last) r.pause();
      pending.then(
        () => {
          writing = false;
          if (settled) return;
          if (last) settle();
          else if (ended) flush();
          else r.resume();
        },
        (err: unknown) => settle(err),
      );
    };
    const onData = (chunk: Buffer | string): void => {
      if (sizeExceeded(message)) {
        settle(new MessageTooBigError('message size limit exceeded'));
        return;
      }
      gather(encoder.encodeChunk(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk));
      if (size >= FLUSH_BYTES) flush();
      else scheduled ??= setImmediate(flush);
    };
    const onEnd = (): void => {
      if (sizeExceeded(message)) {
        settle(new MessageTooBigError('message size limit exceeded'));
        return;
      }
      ended = true;
      gather(encoder.finish());
      if (scheduled) clearImmediate(scheduled);
      flush();
    };
    const onError = (err: Error): void => settle(new MessageStreamError(`message stream failed: ${err.message}`, { cause: err }));
    const onClose = (): void => {
      if (!ended) settle(new MessageStreamError('message stream closed before its end'));
    };

    if (r.destroyed === true && r.readableEnded !== true) {
      settle(new MessageStreamError('message stream closed before its end'));
      return;
    }
    if (prefix.length > 0) gather(encoder.encodeChunk(Buffer.from(/[\r\n]$/.test(prefix) ? prefix : `${prefix}\r\n`, 'utf8')));
    r.on('data', onData);
    r.once('end', onEnd);
    r.on('error', onError);
    r.once('close', onClose);
  });
}

function invalidAddress(kind: 'MAIL' | 'RCPT'): SmtpReply {
  return kind === 'MAIL'
    ? localReply(501, '5.1.7', 'Bad sender address syntax')
    : localReply(501, '5.1.3', 'Bad recipient address syntax');
}

// ---------------------------------------------------------------------------------------------
// smtp kind

interface IdleEntry {
  conn: BackendConnection;
  timer: NodeJS.Timeout;
}

/** Transaction and message counters both relay kinds keep (stats(), metrics). */
abstract class CountingRelay {
  protected readonly counters = { active: 0, opened: 0, reused: 0, transactions: 0, messages: 0, bytes: 0, failures: 0 };

  transactionEnded(): void {
    this.counters.active--;
  }

  countFailure(): void {
    this.counters.failures++;
  }

  countMessage(bytes: number): void {
    this.counters.messages++;
    this.counters.bytes += bytes;
  }
}

class SmtpRelay extends CountingRelay implements Relay {
  readonly timeoutMs: number;
  private readonly idle: IdleEntry[] = [];
  private closed = false;

  constructor(readonly opts: SmtpRelayOptions) {
    super();
    this.timeoutMs = Math.max(1, Math.round(opts.timeoutMs));
  }

  get logger(): Logger | undefined {
    return this.opts.logger;
  }

  async begin(meta: { clientAddress: string; heloName?: string }): Promise<RelayTransaction> {
    if (this.closed) throw new RelayError('Relay is shutting down, try again later', 451);
    let conn = this.takeIdle();
    const reused = conn !== undefined;
    if (!conn) conn = await this.openConnection();
    else this.counters.reused++;
    this.counters.active++;
    this.counters.transactions++;
    return new SmtpTransaction(this, conn, reused, meta);
  }

  async authenticate(meta: { clientAddress: string }, username: string, password: string): Promise<RelayAuthResult> {
    if (this.closed) throw new RelayError('Relay is shutting down, try again later', 451);
    if (username.includes('\0') || password.includes('\0')) return { reply: localReply(535, '5.7.8', 'Authentication credentials invalid') };
    const line = `AUTH PLAIN ${Buffer.from(`\0${username}\0${password}`, 'utf8').toString('base64')}`;
    let conn = this.takeIdle();
    let reply: SmtpReply | undefined;
    if (conn) {
      try {
        reply = await this.tryAuth(conn, line);
        if (reply.code === 421) throw new RelayError('pooled connection closing', 451);
      } catch {
        // a pooled connection that died or timed out meanwhile: once more on a fresh one
        conn.destroy();
        conn = undefined;
        reply = undefined;
      }
    }
    if (!conn) conn = await this.openConnection(); // counts and logs its own failures
    try {
      reply ??= await this.tryAuth(conn, line);
    } catch (err) {
      conn.destroy();
      this.counters.failures++;
      this.logger?.warn({ err, client: meta.clientAddress, backend: `${this.opts.host}:${this.opts.port}` }, 'backend AUTH check failed');
      throw err instanceof RelayError ? err : new RelayError('Backend unavailable, try again later', 451, { cause: err });
    }
    if (reply.code === 235) return { reply, session: new SmtpAuthSession(this, conn) };
    if (reply.code < 400) {
      // a 334 challenge to an initial response, or any other success: out of step, not usable
      conn.destroy('unexpected reply to AUTH');
      this.counters.failures++;
      this.logger?.warn({ backend: `${this.opts.host}:${this.opts.port}`, reply: formatReply(reply) }, 'unexpected backend reply to AUTH PLAIN');
      return { reply: localReply(454, '4.7.0', 'Temporary authentication failure') };
    }
    // Refused or not possible now: the connection is as unauthenticated as before.
    if (reply.code === 421) conn.destroy('backend closing');
    else this.pool(conn);
    return { reply };
  }

  /** AUTH PLAIN on `conn`; a backend without AUTH PLAIN gets a local 454. */
  private async tryAuth(conn: BackendConnection, line: string): Promise<SmtpReply> {
    const methods = conn.extensions.get('AUTH');
    if (methods === undefined || !/(^|\s)PLAIN(\s|$)/i.test(methods)) {
      this.logger?.warn({ backend: `${this.opts.host}:${this.opts.port}`, auth: methods ?? null }, 'backend does not offer AUTH PLAIN: client AUTH cannot be checked');
      return localReply(454, '4.7.0', 'Temporary authentication failure');
    }
    return conn.command(line, this.timeoutMs);
  }

  /**
   * A transaction on a connection the caller holds (an authenticated session's). `ended` is
   * called once when the transaction is over (released, its RSET answered, or aborted).
   */
  beginOn(conn: BackendConnection, meta: { clientAddress: string; heloName?: string }, ended: () => void): RelayTransaction {
    this.counters.active++;
    this.counters.transactions++;
    return new SmtpTransaction(this, conn, false, meta, () => undefined, ended);
  }

  async close(): Promise<void> {
    this.closed = true;
    const entries = this.idle.splice(0, this.idle.length);
    await Promise.all(
      entries.map((e) => {
        clearTimeout(e.timer);
        e.conn.onIdleEvent = undefined;
        return e.conn.quit(Math.min(this.timeoutMs, 2000));
      }),
    );
  }

  stats(): RelayStats {
    return { kind: 'smtp', idle: this.idle.length, ...this.counters };
  }

  /** Connect, read the greeting, EHLO/HELO. Throws RelayError 451 on any failure. */
  async openConnection(): Promise<BackendConnection> {
    const { host, port, hostname } = this.opts;
    let conn: BackendConnection;
    try {
      conn = await BackendConnection.connect({ host, port, timeoutMs: this.timeoutMs });
    } catch (err) {
      this.counters.failures++;
      this.logger?.warn({ err, backend: `${host}:${port}` }, 'backend connection failed');
      throw err instanceof RelayError ? err : new RelayError('Backend unavailable, try again later', 451, { cause: err });
    }
    const greeting = conn.greeting;
    if (!greeting || greeting.code !== 220) {
      conn.destroy('greeting refused');
      this.counters.failures++;
      const text = greeting ? formatReply(greeting) : 'no greeting';
      this.logger?.warn({ backend: `${host}:${port}`, greeting: text }, 'backend refused the session');
      throw new RelayError(`Backend refused the session (${text}), try again later`, 451);
    }
    let hello: SmtpReply;
    try {
      hello = await conn.hello(hostname, this.timeoutMs);
    } catch (err) {
      conn.destroy();
      this.counters.failures++;
      throw err instanceof RelayError ? err : new RelayError('Backend unavailable, try again later', 451, { cause: err });
    }
    if (hello.code !== 250) {
      conn.destroy('EHLO refused');
      this.counters.failures++;
      this.logger?.warn({ backend: `${host}:${port}`, reply: formatReply(hello) }, 'backend refused EHLO/HELO');
      throw new RelayError(`Backend refused EHLO (${formatReply(hello)}), try again later`, 451);
    }
    this.counters.opened++;
    return conn;
  }

  /** Pops the most recently pooled healthy connection; unhealthy ones are closed on the way. */
  private takeIdle(): BackendConnection | undefined {
    for (let entry = this.idle.pop(); entry !== undefined; entry = this.idle.pop()) {
      clearTimeout(entry.timer);
      const conn = entry.conn;
      conn.onIdleEvent = undefined;
      if (!conn.broken && !conn.hasUnreadReply) return conn;
      conn.destroy();
    }
    return undefined;
  }

  /** Called by a transaction whose connection passed RSET. */
  pool(conn: BackendConnection): void {
    if (this.closed || this.idle.length >= this.opts.poolSize || conn.broken || conn.hasUnreadReply) {
      void conn.quit(Math.min(this.timeoutMs, 2000));
      return;
    }
    const entry: IdleEntry = {
      conn,
      timer: setTimeout(() => {
        this.dropIdle(entry);
        void conn.quit(Math.min(this.timeoutMs, 2000));
      }, POOL_IDLE_MS),
    };
    entry.timer.unref();
    // The backend closed the idle connection or said something (421 timeout): drop it silently.
    conn.onIdleEvent = () => {
      this.dropIdle(entry);
      conn.destroy('backend closed idle connection');
    };
    this.idle.push(entry);
  }

  private dropIdle(entry: IdleEntry): void {
    clearTimeout(entry.timer);
    entry.conn.onIdleEvent = undefined;
    const i = this.idle.indexOf(entry);
    if (i >= 0) this.idle.splice(i, 1);
  }

}

class SmtpTransaction implements RelayTransaction {
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

  constructor(
    private readonly relay: SmtpRelay,
    private conn: BackendConnection,
    private reused: boolean,
    private readonly meta: { clientAddress: string; heloName?: string },
    /** Where a healthy connection goes at release: the pool, or (a no-op) the session that owns it. */
    private readonly home: (conn: BackendConnection) => void = (c) => relay.pool(c),
    /** Called once when the transaction is over: after release (and its RSET) or abort. */
    private readonly ended?: () => void,
  ) {}

  mailFrom(from: string, params: MailFromParams = {}): Promise<SmtpReply> {
    return this.step(async () => {
      if (UNSAFE_ADDRESS.test(from)) return invalidAddress('MAIL');
      try {
        return await this.command(this.mailLine(from, params));
      } catch (err) {
        // A pooled connection may have died between the pool check and now; MAIL has no side
        // effects, so retry once on a fresh connection.
        if (!(err instanceof RelayError) || !this.reused || this.commands > 1) throw err;
        this.relay.logger?.debug({ err }, 'pooled backend connection failed, reconnecting');
        this.conn.destroy();
        this.reused = false;
        try {
          this.conn = await this.relay.openConnection();
        } catch (openErr) {
          this.failed = true; // openConnection counted the failure already
          throw openErr;
        }
        return await this.command(this.mailLine(from, params));
      }
    });
  }

  rcptTo(to: string): Promise<SmtpReply> {
    return this.step(async () => {
      if (UNSAFE_ADDRESS.test(to)) return invalidAddress('RCPT');
      return this.command(`RCPT TO:<${to}>`);
    });
  }

  data(message: NodeJS.ReadableStream, prefix: string): Promise<SmtpReply> {
    return this.step(async () => {
      this.dataBytes = 0;
      const reply = this.relay.opts.chunking !== false && this.conn.extensions.has('CHUNKING') ? await this.bdat(message, prefix) : await this.dataCommand(message, prefix);
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

  private mailLine(from: string, params: MailFromParams): string {
    const ext = this.conn.extensions;
    let line = `MAIL FROM:<${from}>`;
    if (params.size !== undefined && ext.has('SIZE') && Number.isSafeInteger(params.size) && params.size >= 0) {
      line += ` SIZE=${params.size}`;
    }
    if (params.body !== undefined && ext.has('8BITMIME')) line += ` BODY=${params.body}`;
    if (params.smtputf8 === true && ext.has('SMTPUTF8')) line += ' SMTPUTF8';
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
        const meta = { err, client: this.meta.clientAddress, backend: `${this.relay.opts.host}:${this.relay.opts.port}` };
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

/**
 * A backend connection that accepted a client's AUTH: it carries that client's transactions
 * only, is never pooled (it is authenticated as someone), and goes when the client does. If it
 * breaks, begin() rejects with a 421 RelayError: the client must connect and authenticate again.
 */
class SmtpAuthSession implements AuthenticatedRelay {
  private conn: BackendConnection | undefined;
  /** Settles when the previous transaction is over (its RSET answered): one at a time. */
  private previous: Promise<void> = Promise.resolve();

  constructor(
    private readonly relay: SmtpRelay,
    conn: BackendConnection,
  ) {
    this.conn = conn;
  }

  async begin(meta: { clientAddress: string; heloName?: string }): Promise<RelayTransaction> {
    await this.previous;
    const conn = this.conn;
    if (!conn || conn.broken) {
      this.conn = undefined;
      throw new RelayError('Authenticated backend session lost, connect and authenticate again', 421);
    }
    let ended!: () => void;
    this.previous = new Promise<void>((resolve) => (ended = resolve));
    return this.relay.beginOn(conn, meta, ended);
  }

  close(): void {
    const conn = this.conn;
    this.conn = undefined;
    if (!conn || conn.broken) return;
    // after a transaction still finishing (its RSET), not in the middle of it
    void this.previous.then(() => conn.quit(Math.min(this.relay.timeoutMs, 2000)));
  }
}

// ---------------------------------------------------------------------------------------------
// dir kind

class DirRelay extends CountingRelay implements Relay {
  constructor(readonly opts: DirRelayOptions) {
    super();
  }

  begin(meta: { clientAddress: string; heloName?: string }): Promise<RelayTransaction> {
    this.counters.active++;
    this.counters.transactions++;
    return Promise.resolve(new DirTransaction(this, meta));
  }

  /** There is no backend to ask (config refuses server.auth with a dir relay). */
  authenticate(): Promise<RelayAuthResult> {
    return Promise.resolve({ reply: localReply(454, '4.7.0', 'Temporary authentication failure') });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  stats(): RelayStats {
    return { kind: 'dir', idle: 0, ...this.counters };
  }

}

class DirTransaction implements RelayTransaction {
  dataBytes = 0;
  private from: string | undefined;
  private rcpts: string[] = [];
  private done = false;

  constructor(
    private readonly relay: DirRelay,
    private readonly meta: { clientAddress: string; heloName?: string },
  ) {}

  mailFrom(from: string, _params?: MailFromParams): Promise<SmtpReply> {
    this.assertOpen();
    if (UNSAFE_ADDRESS.test(from)) return Promise.resolve(invalidAddress('MAIL'));
    this.from = from;
    this.rcpts = [];
    return Promise.resolve(localReply(250, '2.1.0', 'Ok'));
  }

  rcptTo(to: string): Promise<SmtpReply> {
    this.assertOpen();
    if (this.from === undefined) return Promise.resolve(localReply(503, '5.5.1', 'Error: need MAIL command'));
    if (UNSAFE_ADDRESS.test(to)) return Promise.resolve(invalidAddress('RCPT'));
    this.rcpts.push(to);
    return Promise.resolve(localReply(250, '2.1.5', 'Ok'));
  }

  async data(message: NodeJS.ReadableStream, prefix: string): Promise<SmtpReply> {
    this.assertOpen();
    this.dataBytes = 0;
    if (this.from === undefined || this.rcpts.length === 0) {
      drainMessage(message);
      return localReply(503, '5.5.1', 'Error: need RCPT command');
    }
    const dir = this.relay.opts.dir;
    const name = `${Date.now()}-${randomBytes(8).toString('hex')}.eml`;
    const final = path.join(dir, name);
    let file: DurableFile | undefined;
    const encoder = createDataEncoder({ dotStuff: false, terminate: false });
    try {
      await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE }); // mail is private: no access for others
      const out = await createDurable(final, { temp: path.join(dir, `.${name}.tmp`) });
      file = out;
      const envelope =
        `X-Envelope-From: <${this.from}>\r\n` + this.rcpts.map((r) => `X-Envelope-To: <${r}>\r\n`).join('');
      const head = Buffer.from(envelope, 'utf8');
      await out.write(head);
      await pumpMessage(message, prefix, encoder, (chunk) => out.write(chunk));
      await out.commit();
      this.dataBytes = head.length + encoder.bytesOut;
      this.relay.countMessage(this.dataBytes);
      this.relay.opts.logger?.debug({ file: final, client: this.meta.clientAddress }, 'message stored');
      return localReply(250, '2.0.0', `Ok: queued as ${name}`);
    } catch (err) {
      drainMessage(message);
      await file?.abort();
      if (err instanceof MessageTooBigError) {
        return localReply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
      }
      this.relay.countFailure();
      this.relay.opts.logger?.warn({ err, dir }, 'could not store message');
      throw new RelayError('Could not store the message, try again later', 451, { cause: err });
    }
  }

  release(): Promise<void> {
    this.end();
    return Promise.resolve();
  }

  abort(): void {
    this.end();
  }

  private end(): void {
    this.from = undefined;
    this.rcpts = [];
    if (this.done) return;
    this.done = true;
    this.relay.transactionEnded();
  }

  private assertOpen(): void {
    if (this.done) throw new RelayError('Relay transaction already ended', 451);
  }
}
