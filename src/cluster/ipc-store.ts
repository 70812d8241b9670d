/**
 * A worker's view of the primary's series and sessions gauge, over the cluster's IPC channel.
 *
 * IpcBatcher queues calls in one ordered queue and sends it as one `batch` message at
 * setImmediate: what one event-loop turn calls is one message, one round trip. Each message costs
 * far more than its bytes (its write wakes the primary), so while a batch that asks (counts, the
 * gauge) is unanswered, the queue waits for its answer and then goes as one message: one round
 * trip in flight per worker, and under load many sessions' stages share a message. A queue that
 * waited WAIT_BEHIND_MS goes anyway (a slow store — Redis — must not hold every session of the
 * worker behind one batch). Adds and session opens/closes resolve at once and want no answer;
 * they wait in the same queue.
 * The channel is ordered and the primary applies a batch's ops in order, so an add is counted
 * before any count this worker asks after it; another worker's count sees it once it was sent
 * (at most WAIT_BEHIND_MS later than alone: the same race as adds in flight between processes).
 * IpcStore (the store seam) and IpcSessions (the gauge) share one batcher.
 */
import { StoreError } from '../errors.js';
import type { ClientAddress } from '../series/address.js';
import type { TopEntry, TopOptions } from '../series/types.js';
import { checkValue } from '../series/distinct-sets.js';
import { notDistinct } from '../series/distinct-series.js';
import type { SessionGauge } from '../audit/sessions.js';
import type { AddOp, CountQuery, ManagedStore, StoreStatus } from '../store/types.js';
import { fromWireError, isWireError, type Op, type OpResult, type WorkerMessage } from './messages.js';

interface Waiter {
  resolve(v: OpResult): void;
  reject(err: Error): void;
}

const RESOLVED = Promise.resolve();

/** How long calls wait behind an unanswered batch before they are sent anyway. */
export const WAIT_BEHIND_MS = 5;

export class IpcBatcher {
  private ops: Op[] = [];
  private waiting: Waiter[] = [];
  private scheduled = false;
  /** Sends the queue if the batch in flight is not answered in time. */
  private waitTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private readonly inflight = new Map<number, Waiter[]>();
  private failed: Error | undefined;
  /** Batches sent, and those that wait for an answer (round trips to the primary). */
  batches = 0;
  roundTrips = 0;

  /** `send` throws when the channel is gone. */
  constructor(
    private readonly send: (m: WorkerMessage) => void,
    private readonly waitBehindMs = WAIT_BEHIND_MS,
  ) {}

  /** Queues an op that needs no answer. */
  push(op: Op): void {
    if (this.failed) return;
    this.ops.push(op);
    this.schedule();
  }

  /** Queues an op and resolves with its result. */
  ask(op: Op): Promise<OpResult> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.ops.push(op);
      this.waiting.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Sends the queue at setImmediate, or when the batch in flight is answered (at most `waitBehindMs` later). */
  private schedule(): void {
    if (this.scheduled) return;
    if (this.inflight.size === 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    } else {
      this.waitTimer ??= setTimeout(() => {
        this.waitTimer = undefined;
        if (!this.scheduled) this.flush();
      }, this.waitBehindMs).unref();
    }
  }

  /** Sends what is queued now (also while a batch is in flight: drain, the admin's stats). */
  flush(): void {
    this.scheduled = false;
    if (this.waitTimer) {
      clearTimeout(this.waitTimer);
      this.waitTimer = undefined;
    }
    if (this.ops.length === 0) return;
    const ops = this.ops;
    const waiters = this.waiting;
    this.ops = [];
    this.waiting = [];
    const id = waiters.length ? this.nextId++ : 0;
    this.batches++;
    if (id) {
      this.roundTrips++;
      this.inflight.set(id, waiters);
    }
    try {
      this.send({ ag: 'batch', id, ops });
    } catch (err) {
      this.inflight.delete(id);
      const e = new StoreError(`the primary process is unreachable: ${err instanceof Error ? err.message : String(err)}`);
      for (const w of waiters) w.reject(e);
    }
  }

  /** The primary's answer to batch `id`: one result per answered op, in order. */
  answer(id: number, results: readonly OpResult[]): void {
    const waiters = this.inflight.get(id);
    if (!waiters) return;
    this.inflight.delete(id);
    waiters.forEach((w, i) => {
      const r = results[i];
      if (r === undefined) w.reject(new StoreError('the primary answered fewer results than asked'));
      else if (isWireError(r)) w.reject(fromWireError(r));
      else w.resolve(r);
    });
    if (this.inflight.size === 0 && this.ops.length > 0) this.schedule();
  }

  /** The channel is gone: every waiting and later call fails with `reason`. */
  fail(reason: string): void {
    this.failed = new StoreError(reason);
    for (const ws of [...this.inflight.values(), this.waiting]) for (const w of ws) w.reject(this.failed);
    this.inflight.clear();
    this.ops = [];
    this.waiting = [];
  }

  /** Ops queued and not yet sent, plus batches waiting for an answer. */
  pending(): number {
    return this.ops.length + this.inflight.size;
  }
}

const num = (r: OpResult): number => r as number;

/** The store seam for a worker: the primary's RoutingStore or memory store, one IPC round trip per turn. */
export class IpcStore implements ManagedStore {
  readonly kind = 'cluster';
  private readonly since = Date.now();

  /**
   * `distinct(series)`: whether a series counts distinct values (undefined when unknown), so an
   * add with or without a value is refused here, at once, as the primary's store would.
   */
  constructor(
    private readonly batcher: IpcBatcher,
    private readonly distinct: (series: string) => boolean | undefined = () => undefined,
  ) {}

  /** One add (the admin API, the console): resolves once the primary applied it. */
  async add(series: string, key: string, count = 1): Promise<void> {
    await this.batcher.ask(['A', series, key, count]);
  }

  /** The recorder's adds: resolve at once (the next count of this worker is applied after them). */
  addMany(ops: readonly AddOp[]): Promise<void> {
    for (const op of ops) {
      const distinct = this.distinct(op.series);
      try {
        if (distinct === true) checkValue(op.series, op.value);
        else if (distinct === false && op.value !== undefined) throw notDistinct(op.series);
      } catch (err) {
        return Promise.reject(err as Error); // the ops before it are queued, as a store applies them
      }
      this.batcher.push(op.value === undefined ? ['a', op.series, op.key, op.count] : ['a', op.series, op.key, op.count, op.value]);
    }
    return RESOLVED;
  }

  async count(series: string, key: string, startv = 0, endv = startv): Promise<number> {
    return num(await this.batcher.ask(['c', series, key, startv, endv]));
  }

  countMany(queries: readonly CountQuery[]): Promise<number[]> {
    if (queries.length === 0) return Promise.resolve([]);
    return Promise.all(queries.map((q) => this.batcher.ask(['c', q.series, q.key, q.startv, q.endv]).then(num)));
  }

  async removeItem(series: string, key: string): Promise<number> {
    return num(await this.batcher.ask(['r', series, key]));
  }

  async top(series: string, opts: TopOptions = {}): Promise<TopEntry[]> {
    return (await this.batcher.ask(['t', series, opts])) as TopEntry[];
  }

  status(): StoreStatus {
    return { kind: this.kind, state: 'ok', since: this.since, errors: 0, pending: this.batcher.pending() };
  }

  close(): Promise<void> {
    this.batcher.flush();
    return RESOLVED;
  }
}

/** The concurrent-sessions gauge kept by the primary, so too-many-sessions policies count every worker's sessions. */
export class IpcSessions implements SessionGauge {
  constructor(private readonly batcher: IpcBatcher) {}

  opened(client: ClientAddress | undefined): void {
    if (client) this.batcher.push(['o', client.text]);
  }

  closed(client: ClientAddress | undefined): void {
    if (client) this.batcher.push(['x', client.text]);
  }

  async countAt(client: ClientAddress, mask: number | undefined): Promise<number> {
    return num(await this.batcher.ask(['g', client.text, mask ?? -1]));
  }
}
