/**
 * Cluster limits that hold (redis-store.ts asks here for every count read from Redis).
 *
 * A node batches its adds (max_delay, max_pending), so a node cannot see another's adds before
 * they are shipped, and a burst split across nodes could pass a cluster-wide limit once per
 * node. A count asked with a threshold (CountQuery.above: an enforcing policy's; cluster series
 * only) that is not already above it is therefore read again, after this node shipped its adds
 * and Redis applied them, when
 *
 *   - it is near: more than `above - nearMargin` (default max_pending), or
 *   - this node holds more than `maxUnshipped` (default max_pending / 10) adds of its own for
 *     the key that Redis has not applied (adds, whatever each one's count), however far below
 *     the threshold the count is.
 *
 * The bound: a limit of N (`above: N`) across k nodes lets at most N + (k - 1) × maxUnshipped
 * clients through while the windows the policy sums hold their adds (with `count: rcpts | bytes`,
 * (k - 1) × maxUnshipped adds beyond N, each of its own size). Distinct series have `own` 0:
 * only the near-threshold re-read applies to them. Take the last count (in
 * Redis order) that let a client through: it was at most N, and holds every add Redis applied
 * before it and every add of its own node. A client it does not hold was let through by another
 * node on a first read (a re-read comes after that client's own add was applied), and the
 * latest such client of each node saw all of its node's others among at most maxUnshipped
 * unapplied adds. With Redis out of reach (on_error: local) each node counts alone: no bound.
 *
 * Far from every threshold nothing changes: one round trip. Re-reads asked while one is being
 * prepared go to Redis together, each distinct query once (a burst on one network re-reads its
 * count once per shipment, not once per client).
 */
import type { Query } from './redis-runtime.js';
import type { CountQuery } from './types.js';

export interface HoldingOptions {
  /** cluster series, a count with a threshold: within this margin below it, read again after shipping. Default: maxPending. */
  nearMargin?: number;
  /** cluster series, a count with a threshold: past this many unapplied own adds for the key, read again after shipping. Default: maxPending / 10. */
  maxUnshipped?: number;
}

/** Counts of queries read from Redis; `own`: how many of this node's adds within each Redis had not applied. */
export type RemoteCounts = { total: number[]; own: number[] };

interface Waiting {
  qs: Query[];
  resolve: (counts: number[]) => void;
  reject: (err: unknown) => void;
}

export class HoldingReads {
  /** Counts read again since start. */
  reads = 0;
  private readonly nearMargin: number;
  private readonly maxUnshipped: number;
  private waiting: Waiting[] = [];

  constructor(
    opts: HoldingOptions & { maxPending: number },
    private readonly read: (qs: Query[]) => Promise<RemoteCounts>,
    /** Ships this node's adds; false when Redis failed. */
    private readonly ship: () => Promise<boolean>,
  ) {
    this.nearMargin = Math.max(0, opts.nearMargin ?? opts.maxPending);
    this.maxUnshipped = Math.max(1, opts.maxUnshipped ?? Math.ceil(opts.maxPending / 10));
  }

  /** The counts of `remote` from Redis, read again where a limit needs it; undefined when shipping failed (the caller falls back). */
  async counts(remote: ReadonlyArray<{ q: Query; src: CountQuery }>): Promise<number[] | undefined> {
    const { total, own } = await this.read(remote.map((r) => r.q));
    const again: number[] = [];
    remote.forEach((r, j) => {
      const above = r.src.above;
      if (above === undefined || r.q.rt.spec.replicate !== 'cluster' || total[j]! > above) return;
      if (total[j]! > above - this.nearMargin || own[j]! > this.maxUnshipped) again.push(j);
    });
    if (again.length === 0) return total;
    this.reads += again.length;
    if (!(await this.ship())) return undefined;
    const second = await this.readTogether(again.map((j) => remote[j]!.q));
    again.forEach((j, k) => (total[j] = second[k]!));
    return total;
  }

  /** Reads `qs` with every other re-read asked before the next turn of the event loop. */
  private readTogether(qs: Query[]): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ qs, resolve, reject });
      if (this.waiting.length === 1) setImmediate(() => void this.readWaiting());
    });
  }

  private async readWaiting(): Promise<void> {
    const batch = this.waiting;
    this.waiting = [];
    const distinct = new Map<string, number>();
    const qs: Query[] = [];
    const slots = batch.map((w) =>
      w.qs.map((q) => {
        const id = `${q.rt.spec.name}\0${q.kind}\0${q.field}\0${q.mask}\0${q.startv}\0${q.last}`;
        let at = distinct.get(id);
        if (at === undefined) {
          distinct.set(id, (at = qs.length));
          qs.push(q);
        }
        return at;
      }),
    );
    try {
      const { total } = await this.read(qs);
      batch.forEach((w, i) => w.resolve(slots[i]!.map((at) => total[at]!)));
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
}
