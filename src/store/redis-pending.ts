/**
 * This node's adds that Redis has not applied yet. Pending adds are merged per series, window
 * and key until the next flush takes them as batches (each with a sequence number, so Redis
 * applies a batch at most once); a batch is kept as sent until Redis acknowledged it (and for
 * ackRetentionMs after), or goes back for a retry, first and in order, when sending failed.
 * A count adds the pending ones and the batches above the sequence number Redis reports as
 * applied (read atomically with the counts), so its own adds are counted exactly once whatever
 * order commands reach Redis in (Cluster redirects, retries, timeouts).
 */
import { performance } from 'node:perf_hooks';
import { applyMask, formatPrefix, prefixContains } from '../series/address.js';
import type { KeyLayout } from './redis-layout.js';
import type { Query, Runtime } from './redis-runtime.js';

export interface PendingEntry {
  field: string;
  /** cidr types: the stored key's words (masked to leafBits). */
  words: Uint32Array | undefined;
  delta: number;
  ops: number;
  /** Distinct series: the values added (delta is unused). */
  values?: Set<string>;
}

/** absolute window → field → entry */
export type Windows = Map<number, Map<string, PendingEntry>>;

export interface Batch {
  rt: Runtime;
  seq: number;
  windows: Windows;
  entries: number;
  ops: number;
  /** performance.now() when Redis acknowledged it. */
  ackedAt?: number;
}

/** Entries per Lua call: keeps each script short (Redis runs scripts one at a time). */
const MAX_BATCH_ENTRIES = 1000;

export class PendingAdds {
  private pending = new Map<string, Windows>();
  /** Adds since the last flush (the max_pending trigger). */
  pendingOps = 0;
  /** Batches sent that failed: resent first, in order, with their sequence numbers. */
  private retry: Batch[] = [];
  /** Per series: batches sent and not yet acknowledged, or acknowledged within the last `ackRetentionMs`. */
  private sent = new Map<string, Batch[]>();
  /** Distinct entries in pending + retry (the bound). */
  private buffered = 0;
  private seq = 0;

  constructor(
    private readonly ackRetentionMs: number,
    /** Distinct key×window entries kept; past it, adds for new keys are not kept. */
    private readonly maxBuffered: number,
  ) {}

  /**
   * Merges one add into its key's entry for window `w` (a distinct series' add brings a value, and
   * each new value counts as one buffered entry). False when it was not kept: past maxBuffered.
   */
  put(rt: Runtime, w: number, field: string, words: Uint32Array | undefined, delta: number, value?: string): boolean {
    this.pendingOps++;
    let wins = this.pending.get(rt.spec.name);
    if (!wins) this.pending.set(rt.spec.name, (wins = new Map()));
    let m = wins.get(w);
    if (!m) wins.set(w, (m = new Map()));
    let e = m.get(field);
    if (e && value === undefined) {
      e.delta += delta;
      e.ops++;
      return true;
    }
    if (value !== undefined && e?.values?.has(value)) {
      e.ops++;
      return true;
    }
    if (this.buffered >= this.maxBuffered) return false;
    this.buffered++;
    if (!e) m.set(field, (e = { field, words, delta: 0, ops: 0 }));
    e.ops++;
    if (value === undefined) e.delta = delta;
    else (e.values ??= new Set()).add(value);
    return true;
  }

  /** Adds waiting to be shipped (pending and retry). */
  waiting(): number {
    let pending = 0;
    for (const wins of this.pending.values()) for (const m of wins.values()) for (const e of m.values()) pending += e.ops;
    for (const b of this.retry) pending += b.ops;
    return pending;
  }

  /** True while some batch waits for a retry. */
  retrying(): boolean {
    return this.retry.length > 0;
  }

  /** Keeps the adds of the series `keep` says yes to (a config reload drops or reshapes the others). */
  retain(keep: (name: string) => boolean): void {
    for (const name of [...this.pending.keys()]) {
      if (keep(name)) continue;
      for (const m of this.pending.get(name)!.values()) for (const e of m.values()) this.buffered -= e.values?.size ?? 1;
      this.pending.delete(name);
    }
    for (const name of [...this.sent.keys()]) if (!keep(name)) this.sent.delete(name);
    this.retry = this.retry.filter((b) => {
      if (keep(b.rt.spec.name)) return true;
      this.buffered -= b.entries;
      return false;
    });
  }

  /**
   * Retry batches first (their sequence numbers kept), then the pending adds in chunks. Windows
   * before `windowNow(rt)` - windows + 1 aged out of the series while waiting: not worth sending.
   */
  take(runtimes: ReadonlyMap<string, Runtime>, windowNow: (rt: Runtime) => number): Batch[] {
    const out = this.retry;
    this.retry = [];
    for (const [name, wins] of this.pending) {
      const rt = runtimes.get(name);
      if (!rt) continue;
      // Windows that aged out of the series while waiting (a long outage) are not worth sending.
      const oldest = windowNow(rt) - rt.spec.windows + 1;
      let cur: Batch | undefined;
      for (const [w, m] of wins) {
        if (w < oldest) continue;
        for (const e of m.values()) {
          if (!cur || cur.entries >= MAX_BATCH_ENTRIES) {
            cur = { rt, seq: ++this.seq, windows: new Map(), entries: 0, ops: 0 };
            out.push(cur);
          }
          let bm = cur.windows.get(w);
          if (!bm) cur.windows.set(w, (bm = new Map()));
          bm.set(e.field, e);
          cur.entries += e.values?.size ?? 1;
          cur.ops += e.ops;
        }
      }
    }
    this.pending = new Map();
    this.pendingOps = 0;
    this.buffered = 0;
    return out;
  }

  /** The batches of a series sent and not acknowledged, or acknowledged within ackRetentionMs. */
  sentList(rt: Runtime): Batch[] {
    let list = this.sent.get(rt.spec.name);
    if (!list) this.sent.set(rt.spec.name, (list = []));
    const old = performance.now() - this.ackRetentionMs;
    while (list.length > 0 && list[0]!.ackedAt !== undefined && list[0]!.ackedAt < old) list.shift();
    return list;
  }

  /** Batches whose sending failed: resent first, in sequence order. */
  requeue(batches: Batch[]): void {
    for (const b of batches) {
      this.retry.push(b);
      this.buffered += b.entries;
    }
    this.retry.sort((a, b) => a.seq - b.seq);
  }

  /**
   * This node's adds for a query that Redis has not applied: the pending ones, and the batches
   * sent (or waiting for a retry) with a sequence number above `applied`.
   */
  unapplied(q: Query, cur: number, applied: number): number {
    let sum = 0;
    const wins = this.pending.get(q.rt.spec.name);
    if (wins) sum += windowsDelta(wins, q, cur);
    for (const b of this.sentList(q.rt)) if (b.seq > applied) sum += windowsDelta(b.windows, q, cur);
    for (const b of this.retry) if (b.rt.spec.name === q.rt.spec.name && b.seq > applied) sum += windowsDelta(b.windows, q, cur);
    return sum;
  }

  /** Adds this node's unapplied adds of windows startv..last to `sums` (per stored key). */
  addUnapplied(sums: Map<string, number>, rt: Runtime, startv: number, last: number, cur: number, applied: number): void {
    const addWindows = (wins: Windows) => {
      for (const [w, m] of wins) {
        const v = cur - w;
        if (v < startv || v > last) continue;
        for (const e of m.values()) sums.set(e.field, (sums.get(e.field) ?? 0) + e.delta);
      }
    };
    const wins = this.pending.get(rt.spec.name);
    if (wins) addWindows(wins);
    for (const b of this.sentList(rt)) if (b.seq > applied) addWindows(b.windows);
    for (const b of this.retry) if (b.rt.spec.name === rt.spec.name && b.seq > applied) addWindows(b.windows);
  }

  /** Removes the pending entries of a series that `matches`; returns their fields. */
  removePending(rt: Runtime, matches: (e: PendingEntry) => boolean): string[] {
    const removed: string[] = [];
    const wins = this.pending.get(rt.spec.name);
    if (!wins) return removed;
    for (const m of wins.values()) {
      for (const e of [...m.values()]) {
        if (!matches(e)) continue;
        m.delete(e.field);
        this.buffered -= e.values?.size ?? 1;
        removed.push(e.field);
      }
    }
    return removed;
  }

  /** The fields of a series this node added to in absolute windows from..to, not yet acknowledged (top lists them too). */
  fields(rt: Runtime, from: number, to: number): Set<string> {
    const out = new Set<string>();
    const collect = (wins: Windows) => {
      for (const [w, m] of wins) if (w >= from && w <= to) for (const f of m.keys()) out.add(f);
    };
    this.eachHeld(rt, collect);
    return out;
  }

  /**
   * Distinct series: this node's values for a query that Redis may not hold yet, each with the
   * sequence number of the batch that carries it (0: not sent yet): the count script takes those
   * above the last batch Redis applied (read atomically with the sets).
   */
  values(q: Query, cur: number): Map<string, number> {
    const out = new Map<string, number>();
    const collect = (wins: Windows, seq: number) => {
      for (const [w, m] of wins) {
        const v = cur - w;
        if (v < q.startv || v > q.last) continue;
        for (const e of m.values()) {
          if (!e.values || !covers(q, e)) continue;
          for (const x of e.values) {
            const had = out.get(x);
            if (had === undefined || (had !== 0 && (seq === 0 || seq > had))) out.set(x, seq);
          }
        }
      }
    };
    this.eachHeld(q.rt, collect);
    return out;
  }

  /** Calls `fn` with every window map of a series this node holds and its batch (0: pending), sent (retained), to retry. */
  private eachHeld(rt: Runtime, fn: (wins: Windows, seq: number) => void): void {
    const wins = this.pending.get(rt.spec.name);
    if (wins) fn(wins, 0);
    for (const b of this.sentList(rt)) fn(b.windows, b.seq);
    for (const b of this.retry) if (b.rt.spec.name === rt.spec.name) fn(b.windows, b.seq);
  }
}

/** The keys and arguments of the ADD_LUA call (redis-scripts.ts) that applies a batch. */
export function batchCall(layout: KeyLayout, nodeId: string, b: Batch): [string[], Array<string | number>] {
  const { rt } = b;
  const keys: string[] = [layout.seq(rt.spec, nodeId)];
  const args: Array<string | number> = [b.seq, rt.ttl, rt.masksText, rt.spec.max_keys];
  const scratch = new Uint32Array(4);
  for (const [w, m] of b.windows) {
    keys.push(layout.leaf(rt.spec, w), layout.agg(rt.spec, w));
    const leaves: Array<string | number> = [];
    const aggs = new Map<string, number>();
    for (const e of m.values()) {
      if (e.delta === 0) continue;
      leaves.push(e.field, e.delta);
      if (rt.family !== undefined) {
        for (const mask of rt.spec.masks) {
          scratch.set(e.words!);
          applyMask(scratch, rt.family, mask);
          const f = formatPrefix(rt.family, scratch, mask);
          aggs.set(f, (aggs.get(f) ?? 0) + e.delta);
        }
      }
    }
    args.push(leaves.length / 2, aggs.size, ...leaves);
    for (const [f, d] of aggs) args.push(f, d);
  }
  return [keys, args];
}

/** The adds in `wins` that a query covers (windows startv..last back from `cur`). */
function windowsDelta(wins: Windows, q: Query, cur: number): number {
  let sum = 0;
  for (const [w, m] of wins) {
    const v = cur - w;
    if (v < q.startv || v > q.last) continue;
    if (q.kind === 'l') sum += m.get(q.field)?.delta ?? 0;
    else for (const e of m.values()) if (covers(q, e)) sum += e.delta;
  }
  return sum;
}

/** True when a pending entry's key lies in what the query counts (its leaf, or its prefix). */
function covers(q: Query, e: PendingEntry): boolean {
  return q.kind === 'l' ? e.field === q.field : prefixContains(q.words!, q.mask, e.words!, q.rt.leafBits, q.rt.nwords);
}
