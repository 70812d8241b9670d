/**
 * Delivers alert POSTs: a bounded queue, a few requests at a time, each with a timeout (Node's
 * fetch with an AbortSignal), retried with exponential backoff. Nothing here is ever awaited on
 * the SMTP path: `enqueue` returns at once, and a receiver that hangs or is down only fills the
 * queue, whose overflow is dropped and counted.
 *
 * Retried: network errors, timeouts, 5xx, 408 and 429. Any other answer outside 2xx fails at once.
 */
import type { Logger } from 'pino';

export interface AlertTarget {
  /** The alert's name (config `alerts[].name`), the label of its counts. */
  name: string;
  url: string;
  headers: Readonly<Record<string, string>>;
  timeoutMs: number;
  retries: number;
}

export interface AlertCounts {
  sent: number;
  failed: number;
  dropped: number;
}

export interface AlertSenderOptions {
  logger: Logger;
  /** Alerts queued or waiting for a retry, at most. Default 1000. */
  maxQueue?: number;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  /** First retry delay; doubles with each retry. Default 1000 ms. */
  backoffMs?: number;
}

interface Item {
  target: AlertTarget;
  body: string;
  attempt: number;
}

const LOG_EVERY_MS = 10_000;

export class AlertSender {
  private readonly queue: Item[] = [];
  /** Items waiting for a retry timer (they count towards the bound). */
  private waiting = 0;
  private active = 0;
  /** Retry timers and the item each will queue again. */
  private readonly timers = new Map<NodeJS.Timeout, Item>();
  private readonly inFlight = new Set<AbortController>();
  private readonly counts = new Map<string, AlertCounts>();
  private readonly lastLog = new Map<string, number>();
  private closed = false;

  constructor(private readonly opts: AlertSenderOptions) {}

  /** Queues one POST of `body` (JSON) to the target; false (and counted as dropped) when the queue is full. */
  enqueue(target: AlertTarget, body: string): boolean {
    if (this.closed || this.queue.length + this.waiting >= (this.opts.maxQueue ?? 1000)) {
      this.count(target.name).dropped++;
      this.warn(target, 'alert dropped: the alert queue is full (the receiver is slow or down)');
      return false;
    }
    this.queue.push({ target, body, attempt: 0 });
    this.pump();
    return true;
  }

  stats(): ReadonlyMap<string, AlertCounts> {
    return this.counts;
  }

  /** Alerts queued or waiting for a retry. */
  backlog(): number {
    return this.queue.length + this.waiting;
  }

  /** Stops: requests in flight are aborted; what is queued or waiting is dropped (and counted). */
  close(): void {
    this.closed = true;
    for (const [t, item] of this.timers) {
      clearTimeout(t);
      this.count(item.target.name).dropped++;
    }
    this.timers.clear();
    this.waiting = 0;
    for (const c of this.inFlight) c.abort();
    for (const item of this.queue.splice(0)) this.count(item.target.name).dropped++;
  }

  private pump(): void {
    while (!this.closed && this.active < (this.opts.concurrency ?? 4) && this.queue.length > 0) {
      const item = this.queue.shift()!;
      this.active++;
      void this.attempt(item).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private async attempt(item: Item): Promise<void> {
    const { target } = item;
    const controller = new AbortController();
    this.inFlight.add(controller);
    const timer = setTimeout(() => controller.abort(new Error(`timed out after ${target.timeoutMs} ms`)), target.timeoutMs);
    let retry: boolean;
    let why: string;
    try {
      const res = await fetch(target.url, {
        method: 'POST',
        headers: { ...target.headers, 'content-type': 'application/json' },
        body: item.body,
        signal: controller.signal,
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.ok) {
        this.count(target.name).sent++;
        return;
      }
      retry = res.status >= 500 || res.status === 408 || res.status === 429;
      why = `HTTP ${res.status}`;
    } catch (err) {
      if (this.closed) {
        this.count(target.name).dropped++;
        return;
      }
      retry = true;
      const e = err as Error & { cause?: Error };
      why = controller.signal.aborted ? `timed out after ${target.timeoutMs} ms` : (e.cause?.message ?? e.message);
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(controller);
    }
    if (retry && item.attempt < target.retries && !this.closed) {
      const delay = (this.opts.backoffMs ?? 1000) * 2 ** item.attempt;
      this.waiting++;
      const again: Item = { ...item, attempt: item.attempt + 1 };
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.waiting--;
        this.queue.push(again);
        this.pump();
      }, delay);
      t.unref();
      this.timers.set(t, again);
      return;
    }
    this.count(target.name).failed++;
    this.warn(target, `alert not delivered: ${why}`, item.attempt + 1);
  }

  private count(name: string): AlertCounts {
    let c = this.counts.get(name);
    if (!c) this.counts.set(name, (c = { sent: 0, failed: 0, dropped: 0 }));
    return c;
  }

  /** A warning at most every 10 s per alert: a dead receiver must not flood the log. */
  private warn(target: AlertTarget, msg: string, attempts?: number): void {
    const now = performance.now();
    if (now - (this.lastLog.get(target.name) ?? -Infinity) < LOG_EVERY_MS) return;
    this.lastLog.set(target.name, now);
    this.opts.logger.warn({ alert: target.name, url: target.url, attempts, ...this.count(target.name) }, msg);
  }
}
