/**
 * The smtp relay: a real backend over TCP with a small pool of idle connections (LIFO, closed
 * after POOL_IDLE_MS or when the backend speaks first), AUTH checked on a backend connection,
 * and authenticated sessions that keep their connection for one client.
 */
import type { Logger } from 'pino';
import { RelayError } from '../../errors.js';
import { BackendConnection, formatReply, type SmtpReply } from './backend-client.js';
import { CountingRelay, localReply } from './common.js';
import { SmtpTransaction } from './transaction.js';
import type { AuthenticatedRelay, Relay, RelayAuthResult, RelayStats, RelayTransaction, SmtpRelayOptions } from './types.js';

/** An idle pooled connection is closed after this long. */
export const POOL_IDLE_MS = 30_000;

interface IdleEntry {
  conn: BackendConnection;
  timer: NodeJS.Timeout;
}

export class SmtpRelay extends CountingRelay implements Relay {
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
