/**
 * The Redis store: series with replicate: cluster | manager.
 *
 * - cluster: counts come from Redis, so every node's adds are seen by every node. A count on
 *   the node that made an add includes its own adds not yet shipped (local throttling is never
 *   late).
 * - manager: counts (decisions) come from the local memory series; adds are also shipped to
 *   Redis so a central view sees the whole cluster.
 * - central view (`central: true`, see createRedisView in create.ts): every series is read from
 *   Redis; what an admin tool or CLI pointed at Redis uses.
 *
 * Batching, the at-most-once sequence numbers and what happens while Redis is unreachable:
 * redis-link.ts. Counts near a policy's threshold, read again so that a cluster-wide limit
 * holds: redis-holding.ts. Key layout and TTLs: redis-layout.ts. Scripts: redis-scripts.ts.
 */
import { InvalidKeyError } from '../errors.js';
import type { AuditSeries } from '../series/index.js';
import { FAMILY_BITS, applyMask, formatPrefix, parsePrefix, prefixContains } from '../series/address.js';
import { TopK } from '../series/topk.js';
import type { TopEntry, TopOptions } from '../series/types.js';
import { scripts } from './redis-connect.js';
import { HoldingReads, type RemoteCounts } from './redis-holding.js';
import { RedisLink } from './redis-link.js';
import type { RedisStoreOptions } from './redis-options.js';
import { type Query, type Runtime, checkCount, checkRange, checkStringKey, compileQuery, leafOf, sumMatching, sumsAtMask } from './redis-runtime.js';
import type { AddOp, CountQuery, ManagedStore } from './types.js';
import { partitioned } from './partition.js';
import { RedisDistinct } from './redis-distinct.js';
import { applyAdd } from './memory-store.js';
import { checkValue } from '../series/distinct-sets.js';
import { notDistinct, valueRequired } from '../series/distinct-series.js';

export class RedisSeriesStore extends RedisLink implements ManagedStore {
  readonly kind = 'redis';
  /** Distinct series: their batches, counts, top and removal (redis-distinct.ts). */
  private readonly distinct = new RedisDistinct({
    client: this.client,
    layout: this.layout,
    nodeId: this.nodeId,
    adds: this.adds,
    windowNow: (rt) => this.windowNow(rt),
    deadline: (p, what, ms) => this.deadline(p, what, ms),
    readLeaves: (rt, startv, last) => this.readLeaves(rt, startv, last),
  });

  /** Creates the store and waits (at most connectTimeoutMs) for Redis; unreachable means fallback from the start. */
  static async connect(opts: RedisStoreOptions): Promise<RedisSeriesStore> {
    const s = new RedisSeriesStore(opts);
    await s.start();
    return s;
  }

  /** Counts near a threshold read again (cluster limits that hold). */
  private readonly holding: HoldingReads;

  private constructor(opts: RedisStoreOptions) {
    super(opts);
    this.holding = new HoldingReads({ ...opts, maxPending: this.maxPending }, (qs) => this.countRemote(qs), () => this.shipNow());
  }
  // ---- adds ------------------------------------------------------------------------------

  async add(series: string, key: string, count = 1): Promise<void> {
    this.addOne({ series, key, count });
    this.afterAdds();
  }

  async addMany(ops: readonly AddOp[]): Promise<void> {
    try {
      for (const op of ops) this.addOne(op);
    } catch (err) {
      if (this.state === 'ok') this.scheduleFlush();
      throw err;
    }
    this.afterAdds();
  }

  private addOne(op: AddOp): void {
    const rt = this.runtime(op.series);
    if (rt.spec.distinct) {
      if (op.value === undefined) throw valueRequired(op.series);
      checkValue(op.series, op.value);
    } else {
      if (op.value !== undefined) throw notDistinct(op.series);
      checkCount(rt, op.count);
    }
    const leaf = leafOf(rt, op.key);
    if (!leaf) return; // the other address family: ignored, as the memory series does
    const local = this.local(rt);
    if (local) applyAdd(local, op);
    this.keep(rt, this.windowNow(rt), leaf.field, leaf.words, op.count, op.value);
  }

  private afterAdds(): void {
    if (this.state !== 'ok') {
      if (this.onError !== 'local') throw this.unavailableError('add (kept for the merge)');
      return;
    }
    this.scheduleFlush();
  }

  // ---- counts ----------------------------------------------------------------------------

  async count(series: string, key: string, startv = 0, endv = startv): Promise<number> {
    const [n] = await this.countMany([{ series, key, startv, endv }]);
    return n!;
  }

  async countMany(queries: readonly CountQuery[]): Promise<number[]> {
    const out = new Array<number>(queries.length).fill(0);
    const remote: Array<{ i: number; q: Query; src: CountQuery }> = [];
    queries.forEach((src, i) => {
      const rt = this.runtime(src.series);
      const q = compileQuery(rt, src.key, src.startv, src.endv);
      if (!q) return;
      if (rt.readLocal) out[i] = this.localOrThrow(rt).count(src.key, src.startv, src.endv);
      else remote.push({ i, q, src });
    });
    if (remote.length === 0) return out;
    let counts: number[] | undefined;
    if (this.state === 'ok') {
      try {
        counts = await this.holding.counts(remote);
      } catch (err) {
        this.fail(err, 'count');
      }
    }
    if (counts) remote.forEach((r, j) => (out[r.i] = counts[j]!));
    else {
      this.checkFallback('count');
      for (const r of remote) out[r.i] = this.localOrThrow(r.q.rt).count(r.src.key, r.src.startv, r.src.endv);
    }
    return out;
  }

  /** Counts read again after shipping this node's adds (redis-holding.ts), since start. */
  get holdingReads(): number {
    return this.holding.reads;
  }

  /**
   * Counts from Redis: sums (countSums) and distinct values (redis-distinct.ts), in query order.
   * `own` (redis-holding.ts) is 0 for distinct series: only the near-threshold re-read applies.
   */
  private async countRemote(qs: Query[]): Promise<RemoteCounts> {
    const pairs = await partitioned(
      qs,
      (q) => q.rt.spec.distinct === true,
      async (sums) => {
        const r = await this.countSums(sums);
        return r.total.map((t, i): [number, number] => [t, r.own[i]!]);
      },
      async (distinct) => (await this.distinct.count(distinct)).map((t): [number, number] => [t, 0]),
    );
    return { total: pairs.map((p) => p[0]), own: pairs.map((p) => p[1]) };
  }

  /**
   * One Lua call per series (sent together: one round trip). A query at a mask some writer of
   * a window did not keep is summed from the leaves instead (a second round trip). `own`: how
   * many of this node's adds within each total Redis had not applied.
   */
  private async countSums(qs: Query[]): Promise<RemoteCounts> {
    const groups = new Map<Runtime, number[]>();
    qs.forEach((q, i) => {
      const g = groups.get(q.rt);
      if (g) g.push(i);
      else groups.set(q.rt, [i]);
    });
    const results = new Array<number>(qs.length).fill(0);
    const own = new Array<number>(qs.length).fill(0);
    const scans: number[] = [];
    const calls: Array<Promise<void>> = [];
    for (const [rt, idx] of groups) {
      const cur = this.windowNow(rt);
      let vmin = Infinity;
      let vmax = -1;
      for (const i of idx) {
        vmin = Math.min(vmin, qs[i]!.startv);
        vmax = Math.max(vmax, qs[i]!.last);
      }
      const keys: string[] = [this.layout.seq(rt.spec, this.nodeId)];
      for (let v = vmin; v <= vmax; v++) keys.push(this.layout.leaf(rt.spec, cur - v), this.layout.agg(rt.spec, cur - v));
      const args: Array<string | number> = [];
      for (const i of idx) {
        const q = qs[i]!;
        args.push(q.kind, q.field, q.mask, q.startv - vmin + 1, q.last - vmin + 1);
      }
      calls.push(
        scripts(this.client)
          .agCount(keys.length, ...keys, ...args)
          .then(([applied, ...reply]) => {
            idx.forEach((i, j) => {
              const [sum, scan] = reply[j] ?? [0, ''];
              if (scan) scans.push(i);
              else {
                results[i] = Number(sum) + this.adds.unapplied(qs[i]!, cur, Number(applied));
                own[i] = this.adds.unapplied(qs[i]!, cur, Number(applied), 'ops');
              }
            });
          }),
      );
    }
    await this.deadline(Promise.all(calls), 'count');
    await Promise.all(
      scans.map(async (i) => {
        const q = qs[i]!;
        const { applied, hashes, cur } = await this.readLeaves(q.rt, q.startv, q.last);
        let sum = 0;
        for (const h of hashes) sum += sumMatching(h, q);
        results[i] = sum + this.adds.unapplied(q, cur, applied);
        own[i] = this.adds.unapplied(q, cur, applied, 'ops');
      }),
    );
    return { total: results, own };
  }

  /**
   * Reads the leaf hashes of windows startv..last (window order) and, atomically with them,
   * the last batch of this node Redis applied.
   */
  private async readLeaves(rt: Runtime, startv: number, last: number): Promise<{ applied: number; hashes: Array<Map<string, number>>; cur: number }> {
    const cur = this.windowNow(rt);
    const keys = [this.layout.seq(rt.spec, this.nodeId)];
    for (let v = startv; v <= last; v++) keys.push(this.layout.leaf(rt.spec, cur - v));
    const [applied, ...flat] = await this.deadline(scripts(this.client).agLeaves(keys.length, ...keys), 'read', this.commandTimeoutMs * 4);
    const hashes = flat.map((f) => {
      const m = new Map<string, number>();
      for (let k = 0; k + 1 < f.length; k += 2) m.set(String(f[k]), Number(f[k + 1]));
      return m;
    });
    return { applied: Number(applied), hashes, cur };
  }

  // ---- top and remove ----------------------------------------------------------------------

  async top(series: string, opts: TopOptions = {}): Promise<TopEntry[]> {
    const rt = this.runtime(series);
    const full = rt.family === undefined ? 0 : FAMILY_BITS[rt.family];
    const mask = rt.family === undefined ? 0 : Math.min(opts.mask ?? rt.leafBits, rt.leafBits);
    if (rt.family !== undefined && (!Number.isInteger(mask) || mask < 0 || mask > full)) {
      throw new InvalidKeyError(`series "${series}": mask ${opts.mask} is not a prefix length from 0 to ${full}`);
    }
    const startv = opts.startv ?? 0;
    const last = checkRange(rt, startv, opts.endv ?? rt.spec.windows - 1);
    if (rt.readLocal) return this.localOrThrow(rt).top(opts);
    const limit = opts.limit ?? 10;
    const remote = () => (rt.spec.distinct ? this.distinct.top(rt, mask, startv, last, limit) : this.topSums(rt, mask, startv, last, limit));
    if (this.state === 'ok') {
      try {
        return await remote();
      } catch (err) {
        this.fail(err, 'top');
      }
    }
    this.checkFallback('top');
    return this.localOrThrow(rt).top(opts);
  }

  /** The heaviest stored keys, or prefixes at `mask`, of a series that sums its adds. */
  private async topSums(rt: Runtime, mask: number, startv: number, last: number, limit: number): Promise<TopEntry[]> {
    const sums = await this.leafSums(rt, startv, last);
    const heap = new TopK(limit);
    for (const [k, c] of sumsAtMask(rt, sums, mask)) heap.offer(k, c);
    return heap.result();
  }

  /** Sum per stored key over windows startv..last: Redis plus this node's adds not yet applied. */
  private async leafSums(rt: Runtime, startv: number, last: number): Promise<Map<string, number>> {
    const { applied, hashes, cur } = await this.readLeaves(rt, startv, last);
    const sums = new Map<string, number>();
    for (const h of hashes) for (const [k, c] of h) sums.set(k, (sums.get(k) ?? 0) + c);
    this.adds.addUnapplied(sums, rt, startv, last, cur, applied);
    return sums;
  }

  /**
   * Removes a key (for `ip/mask`, every stored key inside it) from every window: in Redis, in
   * the adds not yet shipped and in the local mirror. Returns the distinct keys removed (from
   * the local series for manager series). Redis unavailable: the local part is done and a
   * StoreError says the shared counts still hold the key.
   */
  async removeItem(series: string, key: string): Promise<number> {
    const rt = this.runtime(series);
    let target: { words: Uint32Array | undefined; mask: number; field: string | undefined };
    if (rt.family === undefined) {
      checkStringKey(rt, key);
      target = { words: undefined, mask: 0, field: key };
    } else {
      const p = parsePrefix(key);
      if (!p) throw new InvalidKeyError(`series "${series}": "${key}" is not an IP address or CIDR prefix`);
      if (p.family !== rt.family) return 0;
      if (p.mask >= rt.leafBits) {
        applyMask(p.words, rt.family, rt.leafBits);
        target = { words: p.words, mask: rt.leafBits, field: formatPrefix(rt.family, p.words, rt.leafBits) };
      } else {
        target = { words: p.words, mask: p.mask, field: undefined };
      }
    }
    const matches = (e: { field: string; words: Uint32Array | undefined }): boolean =>
      target.field !== undefined ? e.field === target.field : prefixContains(target.words!, target.mask, e.words!, rt.leafBits, rt.nwords);

    const localRemoved = this.local(rt)?.removeItem(key) ?? 0;
    const removed = new Set<string>(this.adds.removePending(rt, matches));
    if (this.state !== 'ok') {
      if (rt.readLocal) return localRemoved;
      throw this.unavailableError('remove (removed locally only; the shared counts still hold it)');
    }
    const fieldMatches = (f: string): boolean => {
      const words = rt.family === undefined ? undefined : parsePrefix(f)?.words;
      return (rt.family === undefined || words !== undefined) && matches({ field: f, words });
    };
    try {
      const gone = rt.spec.distinct ? await this.distinct.remove(rt, fieldMatches, target) : await this.removeRemote(rt, target.field, matches);
      for (const f of gone) removed.add(f);
    } catch (err) {
      this.fail(err, 'remove');
      if (rt.readLocal) return localRemoved;
      throw this.unavailableError('remove (removed locally only; the shared counts still hold it)', err);
    }
    return rt.readLocal ? localRemoved : removed.size;
  }

  private async removeRemote(
    rt: Runtime,
    exact: string | undefined,
    matches: (e: { field: string; words: Uint32Array | undefined }) => boolean,
  ): Promise<string[]> {
    const cur = this.windowNow(rt);
    const windows: number[] = [];
    for (let v = 0; v < rt.spec.windows; v++) windows.push(cur - v);
    let perWindow: string[][];
    if (exact !== undefined) perWindow = windows.map(() => [exact]);
    else {
      const { hashes } = await this.readLeaves(rt, 0, rt.spec.windows - 1);
      perWindow = hashes.map((h) =>
        [...h.keys()].filter((f) => {
          const p = parsePrefix(f);
          return p !== null && matches({ field: f, words: p.words });
        }),
      );
    }
    const keys: string[] = [];
    const args: Array<string | number> = [rt.masksText, rt.ttl];
    const scratch = new Uint32Array(4);
    windows.forEach((w, k) => {
      const fields = perWindow[k]!;
      if (fields.length === 0) return;
      keys.push(this.layout.leaf(rt.spec, w), this.layout.agg(rt.spec, w));
      args.push(fields.length);
      for (const f of fields) {
        const aggs: string[] = [];
        if (rt.family !== undefined) {
          const p = parsePrefix(f);
          for (const mask of p ? rt.spec.masks : []) {
            scratch.set(p!.words);
            applyMask(scratch, rt.family, mask);
            aggs.push(formatPrefix(rt.family, scratch, mask));
          }
        }
        args.push(f, aggs.length, ...aggs);
      }
    });
    if (keys.length === 0) return [];
    return this.deadline(scripts(this.client).agRemove(keys.length, ...keys, ...args), 'remove');
  }

  // ---- the local mirror ------------------------------------------------------------------

  /** The local memory series of a replicated series (defined on first use if the gateway did not). */
  private local(rt: Runtime): AuditSeries | undefined {
    const reg = this.registry;
    if (!reg || this.central) return undefined;
    if (!reg.has(rt.spec.name)) {
      const s = rt.spec;
      reg.define({
        name: s.name,
        type: s.type,
        interval: s.interval,
        windows: s.windows,
        options: {
          replicate: s.replicate,
          max_keys: s.max_keys,
          ...(s.store_prefix !== undefined ? { store_prefix: s.store_prefix } : {}),
          ...(s.distinct ? { distinct: true, levels: s.masks.filter((m) => m > 0) } : {}),
        },
      });
    }
    return reg.get(rt.spec.name);
  }

  private localOrThrow(rt: Runtime): AuditSeries {
    const s = this.local(rt);
    if (!s) throw this.unavailableError(`no local series "${rt.spec.name}" to fall back to`);
    return s;
  }
}
