/**
 * A deliberately small SMTP client connection for the lockstep relay: one command (or one BDAT
 * chunk), one reply (no pipelining), every wait bounded by a timeout; TLS from the start
 * (smtps://) or after STARTTLS (upgrade()). nodemailer's SMTPConnection has no per-command API,
 * so this is hand-rolled.
 *
 * Every transport problem (connection refused, reset, backend closing, malformed reply,
 * timeout) rejects with a RelayError carrying 451 and marks the connection broken; backend
 * replies (including 4xx/5xx) resolve as SmtpReply.
 */
import net from 'node:net';
import tls from 'node:tls';
import { RelayError } from '../../errors.js';
import { ReplyReader, formatReply, type SmtpReply } from './reply.js';

function transportError(message: string, cause?: unknown): RelayError {
  return new RelayError(message, 451, cause === undefined ? undefined : { cause });
}

interface Waiter {
  resolve: (reply: SmtpReply) => void;
  reject: (err: RelayError) => void;
  timer: NodeJS.Timeout;
}

export interface ConnectOptions {
  host: string;
  port: number;
  /** Milliseconds for the TCP connect (and TLS handshake) and for the greeting. */
  timeoutMs: number;
  /** Implicit TLS (smtps://): the handshake comes first, then the greeting. */
  tls?: tls.ConnectionOptions;
}

export class BackendConnection {
  /** Extensions advertised in the EHLO reply, keyword (upper case) → parameters. */
  readonly extensions = new Map<string, string>();
  readonly createdAt = Date.now();
  greeting: SmtpReply | undefined;
  /** Set once the connection cannot be used any more (closed, errored, out of sync). */
  private brokenReason: string | undefined;
  /** The TCP socket, or the TLS socket on top of it (smtps://, or after STARTTLS). */
  private socket: net.Socket;
  private readonly reader = new ReplyReader();
  private readonly replies: SmtpReply[] = [];
  private waiter: Waiter | undefined;
  /** Called when something happens while nobody waits for a reply (idle close, unsolicited reply). */
  onIdleEvent: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.listen(socket);
  }

  private readonly onSocketData = (chunk: Buffer): void => this.onData(chunk);
  private readonly onSocketError = (err: Error): void => this.fail(`backend connection error: ${err.message}`, err);
  private readonly onSocketEnd = (): void => this.fail('backend closed the connection');
  private readonly onSocketClose = (): void => this.fail('backend connection closed');

  private listen(socket: net.Socket): void {
    socket.on('data', this.onSocketData);
    socket.on('error', this.onSocketError);
    socket.on('end', this.onSocketEnd);
    socket.on('close', this.onSocketClose);
  }

  private unlisten(socket: net.Socket): void {
    socket.removeListener('data', this.onSocketData);
    socket.removeListener('error', this.onSocketError);
    socket.removeListener('end', this.onSocketEnd);
    socket.removeListener('close', this.onSocketClose);
  }

  /** Opens the TCP connection (and TLS, for smtps://) and reads the greeting (which the caller must check). */
  static connect(opts: ConnectOptions): Promise<BackendConnection> {
    return new Promise((resolve, reject) => {
      let done = false;
      let connected = false;
      const socket = opts.tls ? tls.connect({ ...opts.tls, host: opts.host, port: opts.port }) : net.connect({ host: opts.host, port: opts.port });
      const timer = setTimeout(() => {
        finish(transportError(connected ? 'TLS handshake with the backend timed out' : 'backend connection timed out'));
      }, opts.timeoutMs);
      const finish = (err: RelayError | undefined, conn?: BackendConnection): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.removeListener('error', onError);
        if (err) {
          socket.destroy();
          reject(err);
        } else if (conn) resolve(conn);
      };
      const onError = (err: Error): void => {
        const code = (err as NodeJS.ErrnoException).code;
        if (connected && opts.tls) finish(transportError(`TLS handshake with the backend failed: ${err.message}`, err));
        else finish(transportError(`backend connection failed${code ? ` (${code})` : ''}`, err));
      };
      socket.once('error', onError);
      socket.once('connect', () => (connected = true));
      socket.once(opts.tls ? 'secureConnect' : 'connect', () => {
        const conn = new BackendConnection(socket);
        const left = Math.max(1, opts.timeoutMs);
        conn.readReply(left).then(
          (greeting) => {
            conn.greeting = greeting;
            finish(undefined, conn);
          },
          (err: RelayError) => finish(err),
        );
      });
    });
  }

  get broken(): boolean {
    return this.brokenReason !== undefined;
  }

  get reason(): string | undefined {
    return this.brokenReason;
  }

  /** The TLS protocol and cipher when the connection is encrypted, else undefined. */
  get tls(): { protocol: string; cipher: string; authorized: boolean } | undefined {
    const s = this.socket;
    if (!(s instanceof tls.TLSSocket)) return undefined;
    return { protocol: s.getProtocol() ?? '', cipher: s.getCipher().name, authorized: s.authorized };
  }

  /**
   * After the backend's 220 to STARTTLS: the TLS handshake on this connection (RFC 3207). Bytes
   * the backend sent after its 220 would be read as if they came through TLS (a command
   * injection): they break the connection instead. Rejects with a 451 RelayError naming why
   * the handshake failed (a certificate that does not check out, a timeout).
   */
  upgrade(options: tls.ConnectionOptions, timeoutMs: number): Promise<void> {
    if (this.brokenReason !== undefined) return Promise.reject(transportError(this.brokenReason));
    if (this.reader.pending || this.replies.length > 0) {
      this.fail('the backend sent more after its 220 to STARTTLS');
      return Promise.reject(transportError(this.brokenReason ?? 'STARTTLS out of sync'));
    }
    const raw = this.socket;
    this.unlisten(raw);
    raw.on('error', () => undefined); // the TLS socket on top reports it
    const secure = tls.connect({ ...options, socket: raw });
    this.socket = secure;
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        secure.removeListener('error', finish);
        if (err === undefined) {
          this.listen(secure);
          resolve();
          return;
        }
        secure.on('error', () => undefined); // destroyed below; nothing more to report
        this.fail(`TLS handshake with the backend failed: ${err.message}`, err);
        raw.destroy();
        reject(transportError(this.brokenReason ?? 'TLS handshake failed', err));
      };
      const timer = setTimeout(() => finish(new Error(`no handshake within ${timeoutMs} ms`)), timeoutMs);
      secure.once('secureConnect', () => finish());
      secure.once('error', finish);
    });
  }

  /** A reply arrived that nobody asked for (e.g. 421 idle timeout from the backend). */
  get hasUnreadReply(): boolean {
    return this.replies.length > 0;
  }

  /** Peeks at (and removes) the oldest reply nobody asked for. */
  takeUnreadReply(): SmtpReply | undefined {
    return this.replies.shift();
  }

  /** Marks the connection unusable and destroys the socket. */
  destroy(reason = 'connection dropped'): void {
    this.fail(reason);
  }

  /** Sends a command line (without CRLF) and waits for its reply. */
  async command(line: string, timeoutMs: number): Promise<SmtpReply> {
    this.checkSendable(line);
    const reply = this.readReply(timeoutMs);
    this.socket.write(`${line}\r\n`);
    return reply;
  }

  /**
   * Sends a command line (without CRLF) followed by raw bytes in one write — a BDAT chunk —
   * and waits for the one reply.
   */
  async commandWithData(line: string, data: Buffer, timeoutMs: number): Promise<SmtpReply> {
    this.checkSendable(line);
    const reply = this.readReply(timeoutMs);
    const head = Buffer.from(`${line}\r\n`, 'latin1');
    this.socket.write(data.length > 0 ? Buffer.concat([head, data], head.length + data.length) : head);
    return reply;
  }

  /** Throws unless `line` is one command line and the connection is usable and in sync. */
  private checkSendable(line: string): void {
    if (/[\r\n]/.test(line)) throw new TypeError('SMTP command must not contain CR or LF');
    if (this.brokenReason !== undefined) throw transportError(this.brokenReason);
    if (this.waiter) throw new RelayError('internal: a command while a reply is awaited', 451);
    if (this.replies.length > 0) {
      // Out of sync: the backend said something we did not ask for.
      const stray = this.replies[0] as SmtpReply;
      this.fail(`unexpected reply from backend: ${formatReply(stray)}`);
      throw transportError(this.brokenReason ?? 'backend out of sync');
    }
  }

  /** Waits for the next reply. Rejects (and breaks the connection) on timeout or close. */
  readReply(timeoutMs: number): Promise<SmtpReply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.brokenReason !== undefined) return Promise.reject(transportError(this.brokenReason));
    if (this.waiter) return Promise.reject(new RelayError('internal: concurrent SMTP reads', 451));
    return new Promise<SmtpReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(`backend did not reply within ${timeoutMs} ms`);
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** EHLO, falling back to HELO when EHLO gets a 5xx. Returns the final reply. */
  async hello(name: string, timeoutMs: number): Promise<SmtpReply> {
    const ehlo = await this.command(`EHLO ${name}`, timeoutMs);
    if (ehlo.code === 250) {
      this.extensions.clear();
      for (const line of ehlo.lines.slice(1)) {
        const m = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line.trim());
        if (m?.[1]) this.extensions.set(m[1].toUpperCase(), (m[2] ?? '').trim());
      }
      return ehlo;
    }
    if (ehlo.code >= 500) {
      this.extensions.clear();
      return this.command(`HELO ${name}`, timeoutMs);
    }
    return ehlo;
  }

  /**
   * Writes raw bytes. Resolves at once when the socket buffer has room, otherwise when it
   * drained; rejects if it does not drain within timeoutMs or the connection breaks.
   */
  write(chunk: Buffer, timeoutMs: number): Promise<void> | undefined {
    if (this.brokenReason !== undefined) return Promise.reject(transportError(this.brokenReason));
    if (this.socket.write(chunk)) return undefined;
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.socket.removeListener('drain', onDrain);
        this.socket.removeListener('close', onClose);
      };
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        cleanup();
        reject(transportError(this.brokenReason ?? 'backend connection closed'));
      };
      const timer = setTimeout(() => {
        cleanup();
        this.fail(`backend stopped reading for ${timeoutMs} ms`);
        reject(transportError(this.brokenReason ?? 'backend stalled'));
      }, timeoutMs);
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
  }

  /** Polite close: QUIT (reply awaited at most timeoutMs), then destroy. Never throws. */
  async quit(timeoutMs: number): Promise<void> {
    if (this.brokenReason === undefined) {
      try {
        await this.command('QUIT', timeoutMs);
      } catch {
        // closing anyway
      }
    }
    this.fail('connection closed by relay');
  }

  private onData(chunk: Buffer): void {
    if (this.brokenReason !== undefined) return;
    const { replies, error } = this.reader.read(chunk);
    for (const reply of replies) {
      this.deliver(reply);
      if (this.brokenReason !== undefined) return;
    }
    if (error !== undefined) this.fail(error);
  }

  private deliver(reply: SmtpReply): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      clearTimeout(waiter.timer);
      waiter.resolve(reply);
      return;
    }
    if (this.replies.length >= 16) {
      this.fail('backend sends replies nobody asked for');
      return;
    }
    this.replies.push(reply);
    this.onIdleEvent?.();
  }

  private fail(reason: string, cause?: unknown): void {
    if (this.brokenReason !== undefined) return;
    this.brokenReason = reason;
    this.socket.destroy();
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.reject(transportError(reason, cause));
    } else {
      this.onIdleEvent?.();
    }
  }
}
