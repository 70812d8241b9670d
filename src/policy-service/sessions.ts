/**
 * Which engine Session a policy request belongs to. Postfix sends one request per check, never
 * says when an SMTP session ends, and its `instance` attribute is empty before the first RCPT
 * (it names one transaction, RCPT to END-OF-MESSAGE). What does tie the requests of one SMTP
 * session together is its connection: client_address and client_port (with server_address and
 * server_port), which Postfix sends in every request. So:
 *
 * - key: the connection when client_port is sent; else `instance` (one transaction); else none,
 *   and the request is a session of its own (Exim's ${readsocket}, say);
 * - a CONNECT request starts a new session for its key;
 * - at most `max` sessions are kept (least recently asked about goes first) and a session
 *   nobody asked about for `idleMs` is dropped. Neither counts in the `sessions` gauge (the
 *   engine leaves policy-service sessions out of it), so dropping one costs only its state.
 *
 * Pure but for the engine: time comes from the clock it is given.
 */
import type { Clock } from '../series/clock.js';
import { parseClientAddress } from '../series/address.js';
import { connectionId } from '../smtp/connection-id.js';
import { setRecipient, setSender, type Session, type SessionEngine } from '../audit/session.js';
import type { PolicyStage } from './codec.js';
import type { PolicyRequest } from './request.js';

export interface PolicySession {
  readonly s: Session;
  /** Epoch ms of the last request. */
  lastSeen: number;
  /** The `instance` of the transaction under way, once Postfix named it. */
  instance?: string;
  /** The transaction's data stage ran (DATA and END-OF-MESSAGE both map to it; it counts once). */
  dataDone: boolean;
}

export interface PolicySessionsOptions {
  engine: SessionEngine;
  clock: Clock;
  /** Milliseconds without a request after which a session is dropped. */
  idleMs: () => number;
  /** Sessions kept at most. */
  max: number;
}

/** The key that ties a request to its SMTP session, or undefined when nothing does. */
export function sessionKey(q: PolicyRequest): string | undefined {
  if (q.client_address !== undefined && q.client_port !== undefined) {
    return `c ${q.client_address} ${q.client_port} ${q.server_address ?? ''} ${q.server_port ?? ''}`;
  }
  return q.instance ? `i ${q.instance}` : undefined;
}

export class PolicySessions {
  /** In order of the last request (Map order: oldest first). */
  private readonly table = new Map<string, PolicySession>();

  constructor(private readonly opts: PolicySessionsOptions) {}

  get size(): number {
    return this.table.size;
  }

  /** The session for a request, made up to date with what the request says. */
  forRequest(q: PolicyRequest, stage: PolicyStage): PolicySession {
    const now = this.opts.clock.now();
    this.expire(now);
    const key = sessionKey(q);
    let e = key === undefined ? undefined : this.table.get(key);
    if (e && key !== undefined) {
      this.table.delete(key);
      if (stage === 'connect') {
        this.opts.engine.close(e.s);
        e = undefined;
      }
    }
    if (!e) e = { s: this.opts.engine.open('policy', connectionId(), parseClientAddress(q.client_address)), lastSeen: now, dataDone: false };
    e.lastSeen = now;
    if (key !== undefined) {
      this.table.set(key, e);
      this.evict();
    }
    fill(e, q, stage);
    return e;
  }

  /** Drops every session (the front is closing). */
  clear(): void {
    for (const e of this.table.values()) this.opts.engine.close(e.s);
    this.table.clear();
  }

  private expire(now: number): void {
    const idle = this.opts.idleMs();
    for (const [key, e] of this.table) {
      if (now - e.lastSeen <= idle) return;
      this.drop(key, e);
    }
  }

  private evict(): void {
    for (const [key, e] of this.table) {
      if (this.table.size <= this.opts.max) return;
      this.drop(key, e);
    }
  }

  private drop(key: string, e: PolicySession): void {
    this.table.delete(key);
    this.opts.engine.close(e.s);
  }
}

/**
 * The request's facts into the session. A transaction starts at MAIL, or when a new `instance`
 * appears, or at the first sender seen after HELO; at DATA and END-OF-MESSAGE Postfix's own
 * recipient_count says how many recipients it accepted (the list is cut or padded to it: only
 * the number is known of recipients this service was not asked about).
 */
function fill(e: PolicySession, q: PolicyRequest, stage: PolicyStage): void {
  const s = e.s;
  if (q.helo_name) s.helo = q.helo_name;
  if (q.sasl_username) s.authUser = q.sasl_username;
  if (stage === 'connect' || stage === 'helo') return;
  const instance = q.instance || undefined;
  if (stage === 'mail' || (instance !== undefined && instance !== e.instance) || s.mailFrom === undefined) {
    setSender(s, q.sender ?? '');
    s.messageSize = undefined;
    e.instance = instance;
    e.dataDone = false;
  }
  if (stage === 'rcpt') setRecipient(s, q.recipient ?? '');
  if (stage === 'data') {
    if (q.recipient_count !== undefined) {
      const n = q.recipient_count;
      if (s.rcpts.length > n) s.rcpts.length = n;
      while (s.rcpts.length < n) s.rcpts.push(n === 1 ? (q.recipient ?? '').toLowerCase() : '');
    }
    if (q.size !== undefined && q.size > 0) s.messageSize = q.size;
  }
}
