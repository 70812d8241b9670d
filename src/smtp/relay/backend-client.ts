/**
 * A deliberately small SMTP client connection for the lockstep relay: one command (or one BDAT
 * chunk), one reply (no pipelining), every wait bounded by a timeout. nodemailer's SMTPConnection has no
 * per-command API, so this is hand-rolled.
 *
 * Every transport problem (connection refused, reset, backend closing, malformed reply,
 * timeout) rejects with a RelayError carrying 451 and marks the connection broken; backend
 * replies (including 4xx/5xx) resolve as SmtpReply.
 */
import net from 'node:net';
import { RelayError } from '../../errors.js';

export interface SmtpReply {
  code: number;
  /** RFC 3463 enhanced status code of the first line, when present (e.g. "2.1.0"). */
  enhanced?: string;
  /** Text of all lines without code / enhanced code, joined by ' '. */
  message: string;
  /** Text of each line without code / enhanced code. */
  lines: string[];
}

/** Longest reply line we accept (RFC 5321 says 512; be generous). */
const MAX_LINE = 8192;
/** Most lines in one multi-line reply. */
const MAX_REPLY_LINES = 512;
const REPLY_LINE = /^([2-5]\d\d)(?:([ -])(.*))?$/s;
const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: +|$)/;

export function formatReply(reply: SmtpReply): string {
  return `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} ${reply.message}`.trimEnd();
}

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
  /** Milliseconds for the TCP connect and for the greeting. */
  timeoutMs: number;
}

export class BackendConnection {
  /** Extensions advertised in the EHLO reply, keyword (upper case) → parameters. */
  readonly extensions = new Map<string, string>();
  readonly createdAt = Date.now();
  greeting: SmtpReply | undefined;
  /** Set once the connection cannot be used any more (closed, errored, out of sync). */
  private brokenReason: string | undefined;
  private readonly socket: net.Socket;
  private buffer = '';
  private partial: { code: number; lines: string[] } | undefined;
  private readonly replies: SmtpReply[] = [];
  private waiter: Waiter | undefined;
  /** Called when something happens while nobody waits for a reply (idle close, unsolicited reply). */
  onIdleEvent: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(`backend connection error: ${err.message}`, err));
    socket.on('end', () => this.fail('backend closed the connection'));
    socket.on('close', () => this.fail('backend connection closed'));
  }

  /** Opens the TCP connection and reads the greeting (which the caller must check). */
  static connect(opts: ConnectOptions): Promise<BackendConnection> {
    return new Promise((resolve, reject) => {
      let done = false;
      const socket = net.connect({ host: opts.host, port: opts.port });
      const timer = setTimeout(() => {
        finish(transportError('backend connection timed out'));
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
        finish(transportError(`backend connection failed${code ? ` (${code})` : ''}`, err));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
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
    // latin1 keeps one char per byte, so a UTF-8 sequence split across chunks survives;
    // each complete line is decoded as UTF-8 below.
    this.buffer += chunk.toString('latin1');
    let nl = this.buffer.indexOf('\n');
    while (nl >= 0) {
      const line = Buffer.from(this.buffer.slice(0, nl).replace(/\r$/, ''), 'latin1').toString('utf8');
      this.buffer = this.buffer.slice(nl + 1);
      if (!this.onLine(line)) return;
      nl = this.buffer.indexOf('\n');
    }
    if (this.buffer.length > MAX_LINE) this.fail('backend reply line too long');
  }

  /** Returns false when the connection was failed. */
  private onLine(line: string): boolean {
    if (line.length > MAX_LINE) {
      this.fail('backend reply line too long');
      return false;
    }
    const m = REPLY_LINE.exec(line);
    if (!m) {
      this.fail(`malformed reply from backend: ${JSON.stringify(line.slice(0, 80))}`);
      return false;
    }
    const code = Number(m[1]);
    const text = m[3] ?? '';
    if (this.partial && this.partial.code !== code) {
      this.fail('inconsistent multi-line reply from backend');
      return false;
    }
    const partial = this.partial ?? { code, lines: [] };
    partial.lines.push(text);
    if (partial.lines.length > MAX_REPLY_LINES) {
      this.fail('backend reply has too many lines');
      return false;
    }
    if (m[2] === '-') {
      this.partial = partial;
      return true;
    }
    this.partial = undefined;
    this.deliver(buildReply(partial.code, partial.lines));
    return true;
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

export function buildReply(code: number, rawLines: string[]): SmtpReply {
  let enhanced: string | undefined;
  const first = rawLines[0] ?? '';
  const em = ENHANCED.exec(first);
  if (em?.[1] && em[1][0] === String(code)[0]) enhanced = em[1];
  const lines = rawLines.map((l) => {
    if (enhanced && l.startsWith(enhanced)) return l.slice(enhanced.length).trimStart();
    return l;
  });
  const reply: SmtpReply = { code, message: lines.join(' ').trim(), lines };
  if (enhanced) reply.enhanced = enhanced;
  return reply;
}
