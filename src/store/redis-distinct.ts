/**
 * Distinct series in Redis (replicate: cluster | manager with distinct: true): the batch that
 * ships a node's values, counts, top and removal. Scripts: redis-distinct-scripts.ts; keys:
 * redis-layout.ts.
 *
 * Each window keeps, per leaf and per kept prefix (the policies' masks and /0), a SET of values
 * while small and a HyperLogLog above 64 (PFADD, so PFCOUNT agrees with the process's count of
 * the same values). A count is one script: the union of the sets and HLLs of the windows asked
 * for, plus this node's values Redis may not hold yet (pending, in flight, to retry: a union
 * takes a value twice without harm). A prefix at a mask not kept (or one some writer did not
 * keep) is the union of its leaves, listed from the leaf index hashes.
 */
import { EXACT_MAX } from '../series/distinct.js';
import { applyMask, formatPrefix, parsePrefix, prefixContains } from '../series/address.js';
import { TopK } from '../series/topk.js';
import type { TopEntry } from '../series/types.js';
import { type RedisClient, scripts } from './redis-connect.js';
import type { KeyLayout } from './redis-layout.js';
import type { Batch, PendingAdds } from './redis-pending.js';
import { type Query, type Runtime, compileQuery } from './redis-runtime.js';

/** Queries per count script (a top at a mask asks one per group). */
const QUERIES_PER_CALL = 200;

/** What the distinct operations need of the store. */
export interface DistinctLink {
  readonly client: RedisClient;
  readonly layout: KeyLayout;
  readonly nodeId: string;
  readonly adds: PendingAdds;
  windowNow(rt: Runtime): number;
  deadline<T>(p: Promise<T>, what: string, ms?: number): Promise<T>;
  /** The leaf index hashes of windows startv..last (window order) and the current window. */
  readLeaves(rt: Runtime, startv: number, last: number): Promise<{ hashes: Array<Map<string, number>>; cur: number }>;
}

/** The keys and arguments of the ADD_DISTINCT_LUA call that applies a batch. */
export function distinctBatchCall(layout: KeyLayout, nodeId: string, b: Batch): [string[], Array<string | number>] {
  const { rt } = b;
  const spec = rt.spec;
  const keys: string[] = [layout.seq(spec, nodeId)];
  const args: Array<string | number> = [b.seq, rt.ttl, rt.masksText, spec.max_keys, EXACT_MAX];
  const scratch = new Uint32Array(4);
  for (const [w, m] of b.windows) {
    keys.push(layout.leaf(spec, w), layout.agg(spec, w));
    const leafArgs: Array<string | number> = [];
    const aggs = new Map<string, Set<string>>();
    let leaves = 0;
    for (const e of m.values()) {
      if (!e.values || e.values.size === 0) continue;
      leaves++;
      keys.push(layout.values(spec, w, e.field), layout.hll(spec, w, e.field));
      leafArgs.push(e.field, e.values.size);
      for (const v of e.values) leafArgs.push(v);
      if (rt.family === undefined) continue;
      for (const mask of spec.masks) {
        scratch.set(e.words!);
        applyMask(scratch, rt.family, mask);
        const f = formatPrefix(rt.family, scratch, mask);
        let set = aggs.get(f);
        if (!set) aggs.set(f, (set = new Set()));
        for (const v of e.values) set.add(v);
      }
    }
    args.push(leaves, aggs.size);
    for (const a of leafArgs) args.push(a);
    for (const [f, set] of aggs) {
      keys.push(layout.values(spec, w, f), layout.hll(spec, w, f));
      args.push(set.size);
      for (const v of set) args.push(v);
    }
  }
  return [keys, args];
}

/** One count of a script call: its markers (kept masks), (set, hll) pairs and extra values. */
interface DistinctQuery {
  kind: 'l' | 'a';
  mask: number;
  markers: string[];
  pairs: string[];
  /** This node's values Redis may not hold, with the batch that carries each (0: not sent). */
  extra: Map<string, number>;
}

export class RedisDistinct {
  constructor(private readonly link: DistinctLink) {}

  /** Counts distinct queries (any series); results in query order. */
  async count(qs: readonly Query[]): Promise<number[]> {
    const out = new Array<number>(qs.length).fill(0);
    const byRt = new Map<Runtime, number[]>();
    qs.forEach((q, i) => {
      const g = byRt.get(q.rt);
      if (g) g.push(i);
      else byRt.set(q.rt, [i]);
    });
    await Promise.all(
      [...byRt].map(async ([rt, idx]) => {
        const cur = this.link.windowNow(rt);
        // a prefix at a mask this node keeps is read from its own sets (-1: some writer did not keep it)
        const direct = idx.filter((i) => qs[i]!.kind === 'l' || rt.spec.masks.includes(qs[i]!.mask));
        const counts = await this.run(rt, direct.map((i) => this.direct(qs[i]!, cur)));
        direct.forEach((i, j) => (out[i] = counts[j]!));
        const scans = idx.filter((i) => !direct.includes(i) || out[i]! < 0);
        if (scans.length === 0) return;
        // masks some writer did not keep: the union of the leaves inside the prefix
        const lo = Math.min(...scans.map((i) => qs[i]!.startv));
        const hi = Math.max(...scans.map((i) => qs[i]!.last));
        const { hashes, cur: now } = await this.link.readLeaves(rt, lo, hi);
        const leafQs = scans.map((i) => this.overLeaves(qs[i]!, now, hashes, lo));
        const again = await this.run(rt, leafQs);
        scans.forEach((i, j) => (out[i] = again[j]!));
      }),
    );
    return out;
  }

  /**
   * The prefixes (or keys) with the most distinct values over windows startv..last: the leaves
   * Redis lists, and this node's not yet shipped, grouped at `mask`.
   */
  async top(rt: Runtime, mask: number, startv: number, last: number, limit: number): Promise<TopEntry[]> {
    const { hashes, cur } = await this.link.readLeaves(rt, startv, last);
    const groups = new Set<string>();
    const group = (field: string): string => {
      if (rt.family === undefined || mask >= rt.leafBits) return field;
      const p = parsePrefix(field)!;
      applyMask(p.words, rt.family, mask);
      return formatPrefix(rt.family, p.words, mask);
    };
    for (const h of hashes) for (const f of h.keys()) groups.add(group(f));
    for (const f of this.link.adds.fields(rt, cur - last, cur - startv)) groups.add(group(f));
    const keys = [...groups];
    const qs = keys.map((k) => compileQuery(rt, k, startv, last)!);
    const counts = await this.count(qs);
    const heap = new TopK(limit);
    keys.forEach((k, i) => heap.offer(k, counts[i]!));
    return heap.result();
  }

  /**
   * Removes the leaves `matches` accepts from every window and rebuilds the kept prefixes that
   * held them from the leaves that remain; `target` is the removed key's words and mask (cidr).
   * Returns the fields removed, one per window each was found in.
   */
  async remove(rt: Runtime, matches: (field: string) => boolean, target: { words: Uint32Array | undefined; mask: number }): Promise<string[]> {
    const { hashes, cur } = await this.link.readLeaves(rt, 0, rt.spec.windows - 1);
    const { layout } = this.link;
    const spec = rt.spec;
    const keys: string[] = [];
    const args: Array<string | number> = [rt.ttl, EXACT_MAX];
    const pair = (w: number, f: string) => keys.push(layout.values(spec, w, f), layout.hll(spec, w, f));
    hashes.forEach((h, v) => {
      const w = cur - v;
      const removed = [...h.keys()].filter(matches);
      if (removed.length === 0) return;
      keys.push(layout.leaf(spec, w));
      args.push(removed.length, ...removed);
      for (const f of removed) pair(w, f);
      const deleted = new Set<string>();
      const rebuilt: Array<[string, string[]]> = [];
      for (const mask of rt.family === undefined ? [] : spec.masks) {
        if (mask >= target.mask) {
          for (const f of removed) deleted.add(prefixOf(rt, f, mask));
          continue;
        }
        const words = Uint32Array.from(target.words!);
        applyMask(words, rt.family!, mask);
        const sources = [...h.keys()].filter((f) => !matches(f) && prefixContains(words, mask, parsePrefix(f)!.words, rt.leafBits, rt.nwords));
        rebuilt.push([formatPrefix(rt.family!, words, mask), sources]);
      }
      args.push(deleted.size, rebuilt.length);
      for (const f of deleted) pair(w, f);
      for (const [f, sources] of rebuilt) {
        args.push(sources.length);
        pair(w, f);
        for (const s of sources) pair(w, s);
      }
    });
    if (keys.length === 0) return [];
    return this.link.deadline(scripts(this.link.client).agRemoveDistinct(keys.length, ...keys, ...args), 'remove');
  }

  // ---- internals ----------------------------------------------------------------------------

  /** A query read from the sets it names: the leaf's, or the kept prefix's (checked against the markers). */
  private direct(q: Query, cur: number): DistinctQuery {
    const { layout } = this.link;
    const spec = q.rt.spec;
    const d: DistinctQuery = { kind: q.kind, mask: q.mask, markers: [], pairs: [], extra: this.link.adds.values(q, cur) };
    for (let v = q.startv; v <= q.last; v++) {
      const w = cur - v;
      if (q.kind === 'a') d.markers.push(layout.agg(spec, w));
      d.pairs.push(layout.values(spec, w, q.field), layout.hll(spec, w, q.field));
    }
    return d;
  }

  /** A prefix query as the union of the leaves inside it (hashes: windows lo.. in order). */
  private overLeaves(q: Query, cur: number, hashes: Array<Map<string, number>>, lo: number): DistinctQuery {
    const { layout } = this.link;
    const d: DistinctQuery = { kind: 'l', mask: 0, markers: [], pairs: [], extra: this.link.adds.values(q, cur) };
    for (let v = q.startv; v <= q.last; v++) {
      const w = cur - v;
      for (const f of hashes[v - lo]!.keys()) {
        if (prefixContains(q.words!, q.mask, parsePrefix(f)!.words, q.rt.leafBits, q.rt.nwords)) d.pairs.push(layout.values(q.rt.spec, w, f), layout.hll(q.rt.spec, w, f));
      }
    }
    return d;
  }

  /** Runs queries of one series through COUNT_DISTINCT_LUA, QUERIES_PER_CALL at a time. */
  private async run(rt: Runtime, qs: readonly DistinctQuery[]): Promise<number[]> {
    const out: number[] = [];
    for (let at = 0; at < qs.length; at += QUERIES_PER_CALL) {
      const keys: string[] = [this.link.layout.tmp(rt.spec), this.link.layout.seq(rt.spec, this.link.nodeId)];
      const args: Array<string | number> = [EXACT_MAX];
      for (const q of qs.slice(at, at + QUERIES_PER_CALL)) {
        args.push(q.kind, q.mask, q.markers.length, q.pairs.length / 2, q.extra.size);
        for (const [x, seq] of q.extra) args.push(seq, x);
        for (const k of q.markers) keys.push(k);
        for (const k of q.pairs) keys.push(k);
      }
      const res = await this.link.deadline(scripts(this.link.client).agCountDistinct(keys.length, ...keys, ...args), 'count');
      for (const n of res) out.push(Number(n));
    }
    return out;
  }
}

/** A stored cidr key's prefix at `mask`, as text. */
function prefixOf(rt: Runtime, field: string, mask: number): string {
  const p = parsePrefix(field)!;
  applyMask(p.words, rt.family!, mask);
  return formatPrefix(rt.family!, p.words, mask);
}
