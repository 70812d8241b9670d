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
import type { Logger } from 'pino';
import type { SmtpReply } from './backend-client.js';

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
  kind: 'smtp' | 'dir' | 'none';
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
