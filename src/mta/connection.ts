/**
 * One MTA connection of a milter or policy-service front: what both protocols share.
 *
 * - Items (milter commands, policy requests) are decoded as bytes arrive and handled one at a
 *   time, in order: while one waits for the engine (counts from Redis) or for a tarpit, later
 *   ones wait in a queue, and answers go out in the order asked. Reading goes on meanwhile (so
 *   an MTA that leaves is noticed at once) until MAX_QUEUED items wait; then the socket is
 *   paused until the queue drains (only an MTA pipelining far ahead gets there).
 * - The MTA closing its side: a milter connection is over (the MTA is gone); a policy client
 *   may half-close after its request (Exim's ${readsocket} does), so its answers are still
 *   written before our side closes.
 * - A malformed stream (the codec's typed error) closes this connection with one log line;
 *   every other connection goes on.
 * - idle_timeout of silence from the MTA closes the connection; silence while the front itself
 *   is busy (a tarpit holding an answer back) does not count.
 * - A tarpit holds an answer back on timers of this connection only; the MTA leaving frees
 *   them at once.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Stage } from '../config/vocabulary.js';
import type { ProtocolError } from '../errors.js';
import { CONTINUE, type Session, type SessionEngine, type Verdict } from '../audit/session.js';
import { refusalReply, STORE_FAILURE_REPLY } from '../audit/replies.js';
import type { MtaFrontStats } from './listener.js';

export interface MtaConnectionDeps {
  engine: SessionEngine;
  stats: MtaFrontStats;
  /** A child logger naming the front. */
  logger: Logger;
  /** Seconds of MTA silence before the connection is closed (read per connection and after each busy spell). */
  idleTimeout: () => number;
}

/** While a tarpit holds an answer back: something to send every `everyMs` (the milter's SMFIR_PROGRESS). */
export interface HoldTick {
  everyMs: number;
  send(): void;
}

interface Hold {
  timer: NodeJS.Timeout;
  ticker: NodeJS.Timeout | undefined;
  resolve(): void;
}

export interface Decoded<Item> {
  items: Item[];
  error?: ProtocolError<string>;
}

/** `fn(x)` now when `x` is a value, when it resolves when it is a promise. */
export function andThen<T, R>(x: T | Promise<T>, fn: (v: T) => R | Promise<R>): R | Promise<R> {
  return x instanceof Promise ? x.then(fn) : fn(x);
}

/** Items waiting while one is handled before reading pauses. */
export const MAX_QUEUED = 16;

export abstract class MtaConnection<Item> {
  private queue: Item[] = [];
  private busy = false;
  private paused = false;
  /** The MTA closed its side; ours follows once every answer is written. */
  private peerEnded = false;
  private readonly holds = new Set<Hold>();
  protected closed = false;

  constructor(
    protected readonly socket: net.Socket,
    protected readonly deps: MtaConnectionDeps,
  ) {
    socket.setNoDelay(true);
    this.armIdle();
    socket.on('timeout', () => this.idle());
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('end', () => this.ended());
    socket.on('close', () => this.gone());
    socket.on('error', (err: NodeJS.ErrnoException) => this.deps.logger.debug({ ...this.describe(), code: err.code, err: err.message }, 'MTA connection error'));
  }

  /** Decodes a chunk: the items it completed, and the error that ends the stream, if any. */
  protected abstract decode(chunk: Buffer): Decoded<Item>;
  /** The MTA closed its side: the error for a stream that stopped inside an item, if any. */
  protected abstract finish(): ProtocolError<string> | undefined;
  /** Handles one item; a promise holds the next items back until it settles. */
  protected abstract handle(item: Item): void | Promise<void>;
  /** The connection is gone: end what the MTA's session held. */
  protected abstract release(): void;
  /** What log lines say about this connection (cid, client). */
  protected abstract describe(): Record<string, unknown>;
  /** Whether answers are still owed after the MTA closed its side (a half-close), or the connection is over. */
  protected abstract answersAfterEnd(): boolean;

  /** Writes an answer unless the MTA is gone. */
  protected write(buf: Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(buf);
  }

  /**
   * Runs a stage through the engine and serves a tarpit here: the answer is held back for the
   * delay (sending `tick` meanwhile), then the verdict is CONTINUE. An engine failure is a
   * tempfail with the reply table's "temporary local problem".
   */
  protected decide(s: Session, stage: Stage, tick?: (delayMs: number) => HoldTick): Verdict | Promise<Verdict> {
    const failed = (err: unknown): Verdict => {
      this.deps.logger.error({ ...this.describe(), err, stage }, 'stage failed');
      return { action: 'tempfail', reply: refusalReply('tempfail', stage, s.tag, STORE_FAILURE_REPLY), close: false };
    };
    let v: Verdict | Promise<Verdict>;
    try {
      v = this.deps.engine.stage(s, stage);
    } catch (err) {
      return failed(err);
    }
    const served = (r: Verdict): Verdict | Promise<Verdict> => (r.action === 'tarpit' ? this.hold(r.delayMs, tick?.(r.delayMs)).then(() => CONTINUE) : r);
    return v instanceof Promise ? v.then(served, failed) : served(v);
  }

  /** Resolves after `ms`, or at once when the MTA leaves (the caller then writes nothing). */
  protected hold(ms: number, tick?: HoldTick): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const h: Hold = {
        timer: setTimeout(() => this.unhold(h), ms),
        ticker: tick ? setInterval(() => tick.send(), tick.everyMs) : undefined,
        resolve,
      };
      this.holds.add(h);
      this.deps.stats.holding++;
    });
  }

  private unhold(h: Hold): void {
    clearTimeout(h.timer);
    if (h.ticker) clearInterval(h.ticker);
    if (!this.holds.delete(h)) return;
    this.deps.stats.holding--;
    h.resolve();
  }

  /** Closes this connection for a malformed stream, with one log line. */
  protected protocolError(err: ProtocolError<string>): void {
    if (this.closed) return;
    this.deps.stats.protocolErrors++;
    this.deps.logger.warn({ ...this.describe(), code: err.code, reason: err.reason, err: err.message }, 'malformed MTA input: connection closed');
    this.queue = [];
    this.socket.destroy();
  }

  private received(chunk: Buffer): void {
    if (this.closed) return;
    const r = this.decode(chunk);
    for (const item of r.items) this.queue.push(item);
    if (r.error) return this.protocolError(r.error);
    this.pump();
    if (this.queue.length > MAX_QUEUED && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** Handles queued items in order; an async one pauses the socket until it settles. */
  private pump(): void {
    while (!this.busy && !this.closed) {
      const item = this.queue.shift();
      if (item === undefined) return this.drained();
      let r: void | Promise<void>;
      try {
        r = this.handle(item);
      } catch (err) {
        this.fault(err);
        return;
      }
      if (r instanceof Promise) {
        this.busy = true;
        r.catch((err: unknown) => this.fault(err)).finally(() => {
          this.busy = false;
          if (!this.closed) this.pump();
        });
      }
    }
  }

  /** Nothing waits: read again if paused; close our side if the MTA closed its own. */
  private drained(): void {
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    if (this.peerEnded) this.socket.end();
  }

  /** A bug or an unexpected failure while handling: logged as the gateway's fault; the MTA applies its default action. */
  private fault(err: unknown): void {
    this.deps.logger.error({ ...this.describe(), err }, 'MTA connection failed: closed');
    this.socket.destroy();
  }

  private armIdle(): void {
    this.socket.setTimeout(this.deps.idleTimeout() * 1000);
  }

  /** Silence past idle_timeout; while the front itself is busy it does not count (the answer's write starts the timer again). */
  private idle(): void {
    if (this.busy || this.closed) return;
    this.deps.stats.idleTimeouts++;
    this.deps.logger.info({ ...this.describe(), idle_timeout: this.deps.idleTimeout() }, 'idle MTA connection closed');
    this.socket.destroy();
  }

  /** The MTA closed its side: a stream cut inside an item is malformed; else answer what is owed, or go. */
  private ended(): void {
    const err = this.finish();
    if (err) return this.protocolError(err);
    if (!this.answersAfterEnd()) {
      this.socket.destroy();
      return;
    }
    this.peerEnded = true;
    if (!this.busy && this.queue.length === 0) this.socket.end();
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    for (const h of [...this.holds]) this.unhold(h);
    this.release();
  }
}
