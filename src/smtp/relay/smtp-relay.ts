/**
 * The smtp relay: one or more backend MTAs (each a Backend with its own pool), picked per
 * transaction in the order configured (`failover`) or in turn (`round_robin`). A backend that
 * cannot be reached is skipped for its back-off and the transaction goes to the next one before
 * the client hears anything; when none can be reached the client gets a 451. AUTH is checked
 * on a backend connection, and an authenticated session keeps that connection for one client.
 */
import type { Logger } from 'pino';
import { BackendsUnavailableError, RelayError } from '../../errors.js';
import { systemClock } from '../../series/clock.js';
import { Backend } from './backend.js';
import type { BackendConnection } from './backend-client.js';
import { intersect, mailRefusal, type MailFromParams, type RelayCapabilities } from './capabilities.js';
import { CountingRelay, localReply } from './common.js';
import { formatReply, type SmtpReply } from './reply.js';
import { SmtpTransaction, type Lease } from './transaction.js';
import type { AuthenticatedRelay, BeginMeta, Relay, RelayAuthResult, RelayStats, RelayTransaction, SmtpRelayOptions } from './types.js';

export { POOL_IDLE_MS } from './backend.js';

/** A lease from this relay: the connection's backend is one of ours. */
type BackendLease = Lease & { backend: Backend };

export class SmtpRelay extends CountingRelay implements Relay {
  readonly timeoutMs: number;
  readonly chunking: boolean;
  private readonly backends: Backend[];
  /** round_robin: where the next transaction starts. */
  private turn = 0;
  private closed = false;

  constructor(readonly opts: SmtpRelayOptions) {
    super();
    this.timeoutMs = Math.max(1, Math.round(opts.timeoutMs));
    this.chunking = opts.chunking !== false;
    const settings = {
      tls: opts.tls,
      timeoutMs: this.timeoutMs,
      poolSize: opts.poolSize,
      hostname: opts.hostname,
      logger: opts.logger,
      clock: opts.clock ?? systemClock,
      counters: this.counters,
    };
    this.backends = opts.backends.map((t) => new Backend(t, settings));
  }

  get logger(): Logger | undefined {
    return this.opts.logger;
  }

  start(): void {
    for (const b of this.backends) b.warm();
  }

  capabilities(): RelayCapabilities | undefined {
    return intersect(this.backends.flatMap((b) => (b.caps ? [b.caps] : [])));
  }

  async begin(meta: BeginMeta): Promise<RelayTransaction> {
    if (this.closed) throw new RelayError('Relay is shutting down, try again later', 451);
    const lease = await this.lease(meta.mail);
    this.counters.active++;
    this.counters.transactions++;
    if (lease.reused) this.counters.reused++;
    return new SmtpTransaction(this, lease, meta);
  }

  /**
   * A connection on the first backend (in the strategy's order) that can be reached: pooled,
   * or new. A 451 RelayError naming every backend's trouble when none can be reached.
   *
   * Backends known to lack what `needs` asks for (8BITMIME, SMTPUTF8, a SIZE) are used only when
   * every backend lacks it, so that the MAIL gets its permanent refusal; when the backends that
   * have it cannot be reached just now, the client is told to try again later instead.
   */
  async lease(needs?: MailFromParams): Promise<BackendLease> {
    const order = this.order();
    const lacks = (b: Backend): boolean => needs !== undefined && b.caps !== undefined && mailRefusal('', needs, b.caps) !== undefined;
    const able = order.filter((b) => !lacks(b));
    const problems: string[] = [];
    for (const backend of able.length > 0 ? able : order) {
      if (!backend.health.claim()) {
        problems.push(`${backend.url} down (${backend.health.reason ?? 'unreachable'}, next try in ${Math.ceil(backend.health.retryInMs() / 1000)} s)`);
        continue;
      }
      try {
        const { conn, reused } = await backend.acquire();
        return { conn, backend, reused };
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err)); // logged by the backend
      }
    }
    throw new BackendsUnavailableError(`No backend available: ${problems.join('; ')}`, 451);
  }

  /** The backends in the order the next transaction tries them. */
  private order(): readonly Backend[] {
    const list = this.backends;
    if (this.opts.strategy !== 'round_robin' || list.length < 2) return list;
    const start = this.turn++ % list.length;
    return [...list.slice(start), ...list.slice(0, start)];
  }

  async authenticate(meta: { clientAddress: string }, username: string, password: string): Promise<RelayAuthResult> {
    if (this.closed) throw new RelayError('Relay is shutting down, try again later', 451);
    if (username.includes('\0') || password.includes('\0')) return { reply: localReply(535, '5.7.8', 'Authentication credentials invalid') };
    const line = `AUTH PLAIN ${Buffer.from(`\0${username}\0${password}`, 'utf8').toString('base64')}`;
    const lease = await this.lease(); // counts and logs its own failures
    const backend = lease.backend;
    let conn: BackendConnection | undefined = lease.conn;
    let reply: SmtpReply | undefined;
    if (lease.reused) {
      try {
        reply = await this.tryAuth(backend, conn, line);
        if (reply.code === 421) throw new RelayError('pooled connection closing', 451);
      } catch {
        // a pooled connection that died or timed out meanwhile: once more on a fresh one
        conn.destroy();
        conn = undefined;
        reply = undefined;
      }
    }
    conn ??= await backend.open();
    try {
      reply ??= await this.tryAuth(backend, conn, line);
    } catch (err) {
      conn.destroy();
      this.counters.failures++;
      this.logger?.warn({ err, client: meta.clientAddress, backend: backend.url }, 'backend AUTH check failed');
      throw err instanceof RelayError ? err : new RelayError('Backend unavailable, try again later', 451, { cause: err });
    }
    if (reply.code === 235) return { reply, session: new SmtpAuthSession(this, lease.backend, conn) };
    if (reply.code < 400) {
      // a 334 challenge to an initial response, or any other success: out of step, not usable
      conn.destroy('unexpected reply to AUTH');
      this.counters.failures++;
      this.logger?.warn({ backend: backend.url, reply: formatReply(reply) }, 'unexpected backend reply to AUTH PLAIN');
      return { reply: localReply(454, '4.7.0', 'Temporary authentication failure') };
    }
    // Refused or not possible now: the connection is as unauthenticated as before.
    if (reply.code === 421) conn.destroy('backend closing');
    else backend.pool(conn);
    return { reply };
  }

  /** AUTH PLAIN on `conn`; a backend without AUTH PLAIN gets a local 454. */
  private async tryAuth(backend: Backend, conn: BackendConnection, line: string): Promise<SmtpReply> {
    const methods = conn.extensions.get('AUTH');
    if (methods === undefined || !/(^|\s)PLAIN(\s|$)/i.test(methods)) {
      this.logger?.warn({ backend: backend.url, auth: methods ?? null }, 'backend does not offer AUTH PLAIN: client AUTH cannot be checked');
      return localReply(454, '4.7.0', 'Temporary authentication failure');
    }
    return conn.command(line, this.timeoutMs);
  }

  /**
   * A transaction on a connection the caller holds (an authenticated session's). `ended` is
   * called once when the transaction is over (released, its RSET answered, or aborted).
   */
  beginOn(backend: Backend, conn: BackendConnection, meta: BeginMeta, ended: () => void): RelayTransaction {
    this.counters.active++;
    this.counters.transactions++;
    return new SmtpTransaction(this, { conn, backend, reused: false }, meta, { home: () => undefined, ended });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.backends.map((b) => b.close()));
  }

  stats(): RelayStats {
    const backends = this.backends.map((b) => b.stats());
    return { kind: 'smtp', backends, idle: backends.reduce((n, b) => n + b.idle, 0), ...this.counters };
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
    private readonly backend: Backend,
    conn: BackendConnection,
  ) {
    this.conn = conn;
  }

  async begin(meta: BeginMeta): Promise<RelayTransaction> {
    await this.previous;
    const conn = this.conn;
    if (!conn || conn.broken) {
      this.conn = undefined;
      throw new RelayError('Authenticated backend session lost, connect and authenticate again', 421);
    }
    let ended!: () => void;
    this.previous = new Promise<void>((resolve) => (ended = resolve));
    return this.relay.beginOn(this.backend, conn, meta, ended);
  }

  close(): void {
    const conn = this.conn;
    this.conn = undefined;
    if (!conn || conn.broken) return;
    // after a transaction still finishing (its RSET), not in the middle of it
    void this.previous.then(() => conn.quit(this.backend.quitMs));
  }
}
