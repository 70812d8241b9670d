/**
 * One backend MTA: opening a connection to it (connect or smtps:// handshake, greeting, EHLO,
 * STARTTLS per relay.tls and EHLO again), its pool of idle connections (LIFO, closed after
 * POOL_IDLE_MS or when the backend speaks first; a pooled connection keeps its TLS), what it
 * offers (refreshed by every connection's EHLO) and whether it is up (BackendHealth: a backend
 * that cannot be reached is skipped for a back-off, logged once when it goes down and once when
 * it is back).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { RelayError } from '../../errors.js';
import type { Clock } from '../../series/clock.js';
import { BackendConnection } from './backend-client.js';
import { BackendHealth } from './backend-health.js';
import { capabilitiesOf, type RelayCapabilities } from './capabilities.js';
import { formatReply } from './reply.js';
import type { BackendTarget, BackendTlsOptions, RelayBackendStats } from './types.js';

/** An idle pooled connection is closed after this long. */
export const POOL_IDLE_MS = 30_000;

/** What every backend of a relay shares. */
export interface BackendSettings {
  tls: BackendTlsOptions;
  timeoutMs: number;
  poolSize: number;
  hostname: string;
  logger: Logger | undefined;
  clock: Clock;
  /** The relay's counters: connections opened, failures. */
  counters: { opened: number; failures: number };
}

interface IdleEntry {
  conn: BackendConnection;
  timer: NodeJS.Timeout;
}

/** A connection that could not be made usable: why, for the log and the health. */
class OpenProblem extends Error {}

export class Backend {
  readonly health: BackendHealth;
  /** What the backend offered in its last EHLO; undefined until it was reached once. */
  caps: RelayCapabilities | undefined;
  private readonly idle: IdleEntry[] = [];
  /** The background connection of start(), while it is being opened. */
  private warming: Promise<void> | undefined;
  /** Logged once: an opportunistic backend that takes no TLS. */
  private plainNoted = false;
  private closed = false;

  constructor(
    readonly target: BackendTarget,
    private readonly settings: BackendSettings,
  ) {
    this.health = new BackendHealth(settings.clock);
  }

  get url(): string {
    return this.target.url;
  }

  stats(): RelayBackendStats {
    return { url: this.url, up: this.health.state !== 'down', idle: this.idle.length };
  }

  /** A pooled connection, else a new one (after a start() connection still opening, if any). */
  async acquire(): Promise<{ conn: BackendConnection; reused: boolean }> {
    let conn = this.takeIdle();
    if (!conn && this.warming) {
      await this.warming;
      conn = this.takeIdle();
      // that connection failed just now: no second wait on a backend that may not answer
      if (!conn && this.health.state === 'down') throw new RelayError(`Backend ${this.url} unavailable (${this.health.reason ?? 'unreachable'}), try again later`, 451);
    }
    if (conn) return { conn, reused: true };
    return { conn: await this.open(), reused: false };
  }

  /** Opens one connection in the background and pools it: what the backend offers is then known. */
  warm(): void {
    if (this.warming || this.idle.length > 0 || this.closed) return;
    this.warming = this.open().then(
      (conn) => this.pool(conn),
      () => undefined, // logged by open()
    );
    void this.warming.finally(() => (this.warming = undefined));
  }

  /**
   * Connect (TLS first for smtps://), greeting, EHLO, STARTTLS and EHLO again as relay.tls asks.
   * Any failure marks the backend down (logged when it goes down) and is a 451 RelayError.
   */
  async open(plainOnly = false): Promise<BackendConnection> {
    const { timeoutMs, hostname } = this.settings;
    let conn: BackendConnection | undefined;
    try {
      const implicit = this.target.implicitTls ? { tls: this.tlsOptions() } : {};
      conn = await BackendConnection.connect({ host: this.target.host, port: this.target.port, timeoutMs, ...implicit });
      const greeting = conn.greeting;
      if (!greeting || greeting.code !== 220) throw new OpenProblem(`the backend refused the session (${greeting ? formatReply(greeting) : 'no greeting'})`);
      const hello = await conn.hello(hostname, timeoutMs);
      if (hello.code !== 250) throw new OpenProblem(`the backend refused EHLO/HELO (${formatReply(hello)})`);
      if (!this.target.implicitTls && !plainOnly && this.settings.tls.mode !== 'none') await this.startTls(conn);
    } catch (err) {
      conn?.destroy();
      const reason = err instanceof Error ? err.message : String(err);
      if (this.settings.tls.mode === 'opportunistic' && conn?.reason?.startsWith('TLS handshake') && !plainOnly) {
        // opportunistic TLS is never worse than none: a handshake that fails goes plain
        this.notePlain(reason);
        return this.open(true);
      }
      throw this.failed(reason, err);
    }
    this.settings.counters.opened++;
    this.caps = capabilitiesOf(conn.extensions);
    if (this.health.succeeded() === 'recovered') this.settings.logger?.info({ backend: this.url }, 'relay backend is up again');
    return conn;
  }

  /** STARTTLS per relay.tls.mode; an opportunistic backend without it stays plain. */
  private async startTls(conn: BackendConnection): Promise<void> {
    const required = this.settings.tls.mode === 'required';
    if (!conn.extensions.has('STARTTLS')) {
      if (required) throw new OpenProblem('the backend does not offer STARTTLS (relay.tls.mode: required)');
      this.notePlain('the backend does not offer STARTTLS');
      return;
    }
    const reply = await conn.command('STARTTLS', this.settings.timeoutMs);
    if (reply.code !== 220) {
      if (required || reply.code === 421) throw new OpenProblem(`the backend refused STARTTLS (${formatReply(reply)})`);
      this.notePlain(`the backend refused STARTTLS (${formatReply(reply)})`);
      return;
    }
    await conn.upgrade(this.tlsOptions(), this.settings.timeoutMs);
    // RFC 3207 §4.2: what was learned before TLS is forgotten, EHLO again
    const hello = await conn.hello(this.settings.hostname, this.settings.timeoutMs);
    if (hello.code !== 250) throw new OpenProblem(`the backend refused EHLO after STARTTLS (${formatReply(hello)})`);
  }

  /** Handshake options: the certificate and its name are checked in mode required only. */
  private tlsOptions(): tls.ConnectionOptions {
    const t = this.settings.tls;
    const name = t.servername ?? this.target.host;
    const verify = t.mode === 'required';
    const opts: tls.ConnectionOptions = { rejectUnauthorized: verify };
    if (net.isIP(name) === 0) opts.servername = name; // SNI carries names only
    if (verify) {
      opts.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(name, cert);
      if (t.ca !== undefined) opts.ca = t.ca;
    }
    if (t.cert !== undefined && t.key !== undefined) {
      opts.cert = t.cert;
      opts.key = t.key;
    }
    return opts;
  }

  private notePlain(reason: string): void {
    if (this.plainNoted) return;
    this.plainNoted = true;
    this.settings.logger?.info({ backend: this.url, reason }, 'relaying to this backend without TLS (relay.tls.mode: opportunistic)');
  }

  /** Records a failure to open; the backend going down is logged once. Returns the error to throw. */
  private failed(reason: string, cause: unknown): RelayError {
    this.settings.counters.failures++;
    const log = this.settings.logger;
    if (this.health.failed(reason) === 'down') {
      log?.warn({ backend: this.url, reason, retryInMs: this.health.retryInMs() }, 'relay backend is down: skipped until it can be reached again');
    } else {
      log?.debug({ backend: this.url, reason }, 'relay backend still down');
    }
    return new RelayError(`Backend ${this.url} unavailable (${reason}), try again later`, 451, { cause });
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

  /** Takes back a connection whose transaction is over (RSET answered, or a message accepted). */
  pool(conn: BackendConnection): void {
    if (this.closed || this.idle.length >= this.settings.poolSize || conn.broken || conn.hasUnreadReply) {
      void conn.quit(this.quitMs);
      return;
    }
    const entry: IdleEntry = {
      conn,
      timer: setTimeout(() => {
        this.dropIdle(entry);
        void conn.quit(this.quitMs);
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

  get quitMs(): number {
    return Math.min(this.settings.timeoutMs, 2000);
  }

  /** QUITs the idle connections; connections of running transactions are closed at their release. */
  async close(): Promise<void> {
    this.closed = true;
    const entries = this.idle.splice(0, this.idle.length);
    await Promise.all(
      entries.map((e) => {
        clearTimeout(e.timer);
        e.conn.onIdleEvent = undefined;
        return e.conn.quit(this.quitMs);
      }),
    );
  }
}
