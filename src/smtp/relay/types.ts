/**
 * The backend side of the lockstep relay (SPEC §3).
 *
 * The gateway calls `relay.begin()` at MAIL FROM, forwards MAIL / each RCPT and answers the
 * client with the reply it gets here, streams DATA with `data()`, and answers 250 only when
 * `data()` resolved with a 2xx reply. Transport failures of any kind reject with a RelayError
 * whose responseCode is 451, so the client can never get a 250 for mail the backend did not
 * take. Backend replies — 4xx/5xx included — resolve as SmtpReply.
 *
 * Two kinds: `smtp` (backends over TCP or TLS, tried in order or in turn, each with a small
 * pool of idle connections) and `dir` (each message becomes an .eml file, written atomically;
 * for trying the gateway out).
 */
import type { Logger } from 'pino';
import type { RelayStrategy, RelayTlsMode } from '../../config/vocabulary.js';
import type { Clock } from '../../series/clock.js';
import type { MailFromParams, RelayCapabilities } from './capabilities.js';
import type { SmtpReply } from './reply.js';

export type { MailFromParams, RelayCapabilities } from './capabilities.js';

/** Who a transaction is for. */
export interface BeginMeta {
  clientAddress: string;
  heloName?: string;
  /**
   * The client's MAIL parameters: a backend known to lack what they ask for is not tried unless
   * every backend lacks it (then the MAIL gets its permanent refusal).
   */
  mail?: MailFromParams;
}

/**
 * One transaction on one backend. Before its MAIL was accepted it may still move to another
 * backend (the backend it began on was down, or its pooled connection had died); once a backend
 * accepted the MAIL, the transaction stays there, and any failure after that is a 451
 * RelayError, never a retry elsewhere that could deliver the message twice.
 */
export interface RelayTransaction {
  /**
   * MAIL FROM with the client's parameters, all passed on: when the backend lacks what they ask
   * for, this resolves with a local refusal (553 5.6.7 SMTPUTF8, 554 5.6.3 8BITMIME, 552 5.3.4
   * SIZE over the backend's limit) and nothing is sent.
   */
  mailFrom(from: string, params?: MailFromParams): Promise<SmtpReply>;
  /** RCPT TO; a UTF-8 address for a backend without SMTPUTF8 is refused locally (553 5.6.7). */
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

/** One backend as /metrics shows it. */
export interface RelayBackendStats {
  url: string;
  /** False while the backend is skipped (down, in its back-off). */
  up: boolean;
  /** Idle pooled connections to it. */
  idle: number;
}

export interface RelayStats {
  kind: 'smtp' | 'dir';
  /** Per backend (none for dir). */
  backends: RelayBackendStats[];
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
  begin(meta: BeginMeta): Promise<RelayTransaction>;
  /** Ends the backend session (QUIT); called when the client's session ends. */
  close(): void;
}

export interface Relay {
  /** A transaction on a backend that is up; a 451 RelayError when none can be reached. */
  begin(meta: BeginMeta): Promise<RelayTransaction>;
  /**
   * Checks a client's AUTH PLAIN / LOGIN credentials with the backend (AUTH PLAIN on a backend
   * connection). Transport failures reject with a 451 RelayError.
   */
  authenticate(meta: { clientAddress: string }, username: string, password: string): Promise<RelayAuthResult>;
  /** Connects to each backend in the background, to learn what it offers (and pool the connection). */
  start(): void;
  /**
   * What every backend offers, as last seen (each new connection's EHLO refreshes its
   * backend's); undefined until a backend was reached. The front advertises no more than this.
   */
  capabilities(): RelayCapabilities | undefined;
  /** Closes idle connections; transactions still running are closed (not pooled) at release. */
  close(): Promise<void>;
  stats(): RelayStats;
}

/** One backend MTA. */
export interface BackendTarget {
  /** `smtp://host:port` or `smtps://host:port`, for logs and metrics. */
  url: string;
  host: string;
  port: number;
  /** smtps://: TLS from the first byte. */
  implicitTls: boolean;
}

/** TLS to the backends (PEM text, read from the config's files). */
export interface BackendTlsOptions {
  /** STARTTLS on smtp:// backends: none, when offered (unchecked), or required with a checked certificate (also on smtps://). */
  mode: RelayTlsMode;
  ca?: string;
  servername?: string;
  cert?: string;
  key?: string;
}

export interface SmtpRelayOptions {
  kind: 'smtp';
  /** At least one, in the order configured. */
  backends: BackendTarget[];
  strategy: RelayStrategy;
  tls: BackendTlsOptions;
  /** Bounds connect, TLS handshake, greeting, every reply and every stalled write. */
  timeoutMs: number;
  /** Most idle connections kept per backend. 0 disables pooling. */
  poolSize: number;
  /** Send messages with BDAT when the backend offers CHUNKING (default true). */
  chunking?: boolean;
  /** Our EHLO name. */
  hostname: string;
  logger?: Logger;
  /** For the back-off of backends that are down (default: the system clock). */
  clock?: Clock;
}

export interface DirRelayOptions {
  kind: 'dir';
  dir: string;
  hostname: string;
  logger?: Logger;
}

export type RelayOptions = SmtpRelayOptions | DirRelayOptions;
