/**
 * IPv4 (`cidr`) and IPv6 (`cidr_ipv6`) series. Leaves are addresses (or stored prefixes,
 * with store_prefix); aggregate entries keep running sums for a few prefix lengths
 * (`levels`) so a count at /24 or /64 is one lookup and /0 is the running total. Counts
 * at other masks are exact too: they enumerate at most 256 children of the next finer
 * level, or scan it.
 */
import type { Clock } from './clock.js';
import { InvalidKeyError, SeriesDefinitionError } from '../errors.js';
import { FAMILY_BITS, type ClientAddress, type Family, applyMask, formatPrefix, parsePrefix, prefixContains } from './address.js';
import { KIND_AGGREGATE, KIND_FREE, KIND_LEAF, isLeafKind } from './entry-table.js';
import { type SnapshotHead, WindowedSeries, clampCount } from './windowed.js';
import { TopK } from './topk.js';
import type { SeriesDefinition, TopEntry, TopOptions } from './types.js';

/** Prefix lengths kept as aggregates unless a definition says otherwise. */
export const DEFAULT_LEVELS: Readonly<Record<Family, readonly number[]>> = { 4: [8, 16, 24], 6: [32, 48, 56, 64] };
/** Beyond this many bits between a query mask and the next kept level, a count scans instead of enumerating. */
const MAX_ENUMERATE_BITS = 8;
/** Scans yield to the event loop every 2^16 entries (topAsync). */
const SCAN_CHUNK_MASK = 0xffff;

export type KeyResult = { ok: true; words: Uint32Array; mask: number } | { ok: false; reason: 'family' };

export class CidrSeries extends WindowedSeries {
  readonly family: Family;
  /** Bits kept per stored key: 32, 128, or store_prefix. */
  readonly leafBits: number;
  /** Aggregate prefix lengths, ascending, all in 1..leafBits-1. */
  readonly levels: readonly number[];
  private readonly nwords: number;
  private readonly levelSet: Uint8Array;

  private keys = new Uint32Array(0);
  private level = new Uint8Array(0);
  /** Leaf → its finest aggregate → … → coarsest aggregate; -1 ends the chain. */
  private parent = new Int32Array(0);
  private index = new Int32Array(0); // id + 1, 0 = empty; open addressing, linear probing
  private indexMask = 0;
  private readonly scratch = new Uint32Array(4);
  private readonly scratch2 = new Uint32Array(4);

  constructor(def: SeriesDefinition, clock: Clock) {
    super(def, clock);
    this.family = def.type === 'cidr' ? 4 : 6;
    this.nwords = this.family === 4 ? 1 : 4;
    const full = FAMILY_BITS[this.family];
    const sp = def.options?.store_prefix;
    if (sp !== undefined) {
      if (this.family !== 6) throw new SeriesDefinitionError(`series "${def.name}": store_prefix applies to cidr_ipv6 only`);
      if (!Number.isInteger(sp) || sp < 1 || sp > 128) {
        throw new SeriesDefinitionError(`series "${def.name}": store_prefix must be an integer from 1 to 128`);
      }
    }
    this.leafBits = sp ?? full;
    const requested = def.options?.levels ?? DEFAULT_LEVELS[this.family];
    for (const l of requested) {
      if (!Number.isInteger(l) || l < 0 || l > full) {
        throw new SeriesDefinitionError(`series "${def.name}": level ${l} is not a prefix length from 0 to ${full}`);
      }
    }
    this.levels = [...new Set(requested)].filter((l) => l > 0 && l < this.leafBits).sort((a, b) => a - b);
    this.levelSet = new Uint8Array(129);
    for (const l of this.levels) this.levelSet[l] = 1;
    this.initStorage();
    this.resizeIndex(128);
  }

  // ---- storage hooks -------------------------------------------------------------------

  protected override resizeExtra(capacity: number): void {
    const k = new Uint32Array(capacity * this.nwords);
    k.set(this.keys.subarray(0, Math.min(this.keys.length, k.length)));
    this.keys = k;
    const grow = <T extends Int32Array | Uint8Array>(a: T, ctor: new (n: number) => T): T => {
      const b = new ctor(capacity);
      b.set(a.subarray(0, Math.min(a.length, capacity)) as never);
      return b;
    };
    this.level = grow(this.level, Uint8Array);
    this.parent = grow(this.parent, Int32Array);
  }

  protected override extraBytes(): number {
    return this.capacity * (4 * this.nwords + 1 + 4) + this.index.byteLength;
  }

  protected override clearIndex(): void {
    this.keys = new Uint32Array(0);
    this.level = new Uint8Array(0);
    this.parent = new Int32Array(0);
    this.resizeIndex(128);
  }

  protected override compactExtra(map: Int32Array, oldHighWater: number, capacity: number): void {
    const nw = this.nwords;
    const keys = new Uint32Array(capacity * nw);
    const level = new Uint8Array(capacity);
    const parent = new Int32Array(capacity);
    for (let id = 0; id < oldHighWater; id++) {
      const to = map[id]!;
      if (to < 0) continue;
      keys.set(this.keys.subarray(id * nw, id * nw + nw), to * nw);
      level[to] = this.level[id]!;
      const p = this.parent[id]!;
      parent[to] = p < 0 ? -1 : map[p]!;
    }
    this.keys = keys;
    this.level = level;
    this.parent = parent;
    let size = 128;
    while (size < this.entryCount * 2) size *= 2;
    this.resizeIndex(size);
  }

  protected override detachLeaf(id: number): void {
    this.indexDelete(id);
    let p = this.parent[id]!;
    while (p >= 0) {
      for (let s = 0; s < this.windows; s++) this.slots[s]![p] = clampCount(this.slots[s]![p]! - this.slots[s]![id]!);
      const up = this.parent[p]!;
      this.prev[p] = this.prev[p]! - 1;
      if (this.prev[p] === 0) {
        this.indexDelete(p);
        this.freeId(p);
      }
      p = up;
    }
  }

  protected override keyText(id: number): string {
    const nw = this.nwords;
    return formatPrefix(this.family, this.keys.subarray(id * nw, id * nw + nw), this.leafBits);
  }

  // ---- hashing ---------------------------------------------------------------------------

  private hash(words: Uint32Array, off: number, lvl: number): number {
    let h = Math.imul(lvl + 1, 0x9e3779b1);
    for (let i = 0; i < this.nwords; i++) {
      h = Math.imul(h ^ words[off + i]!, 0x5bd1e995);
      h ^= h >>> 15;
    }
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  private resizeIndex(size: number): void {
    this.index = new Int32Array(size);
    this.indexMask = size - 1;
    for (let id = 0; id < this.highWater; id++) {
      if (this.kind[id] !== KIND_FREE) this.indexInsert(id);
    }
  }

  private indexInsert(id: number): void {
    let i = this.hash(this.keys, id * this.nwords, this.level[id]!) & this.indexMask;
    while (this.index[i] !== 0) i = (i + 1) & this.indexMask;
    this.index[i] = id + 1;
  }

  private find(words: Uint32Array, lvl: number): number {
    const nw = this.nwords;
    let i = this.hash(words, 0, lvl) & this.indexMask;
    for (;;) {
      const v = this.index[i]!;
      if (v === 0) return -1;
      const id = v - 1;
      if (this.level[id] === lvl) {
        const off = id * nw;
        let eq = true;
        for (let j = 0; j < nw; j++) {
          if (this.keys[off + j] !== words[j]) {
            eq = false;
            break;
          }
        }
        if (eq) return id;
      }
      i = (i + 1) & this.indexMask;
    }
  }

  /** Backward-shift deletion keeps linear probing free of tombstones. */
  private indexDelete(id: number): void {
    const mask = this.indexMask;
    let i = this.hash(this.keys, id * this.nwords, this.level[id]!) & mask;
    while (this.index[i] !== id + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const v = this.index[j]!;
      if (v === 0) break;
      const k = this.hash(this.keys, (v - 1) * this.nwords, this.level[v - 1]!) & mask;
      const between = i <= j ? i < k && k <= j : i < k || k <= j;
      if (!between) {
        this.index[i] = v;
        i = j;
      }
    }
    this.index[i] = 0;
  }

  private insert(words: Uint32Array, lvl: number, kind: number): number {
    // load factor ≤ 0.75: linear probing stays short, the index stays under 8 bytes per entry
    if ((this.entryCount + 1) * 4 > this.index.length * 3) this.resizeIndex(this.index.length * 2);
    const id = this.allocId(kind);
    const off = id * this.nwords;
    for (let j = 0; j < this.nwords; j++) this.keys[off + j] = words[j]!;
    this.level[id] = lvl;
    this.parent[id] = -1;
    // Aggregates are never in the LRU list, so their `prev` slot holds the number of leaves beneath.
    if (kind === KIND_AGGREGATE) this.prev[id] = 0;
    this.indexInsert(id);
    return id;
  }

  /**
   * Finds or creates the leaf for `words` (already masked to leafBits) with its aggregate chain,
   * for an add of `count` (which decides its LRU segment).
   */
  private leafFor(words: Uint32Array, count: number): number {
    let id = this.find(words, this.leafBits);
    if (id >= 0) {
      this.touchLeaf(id);
      return id;
    }
    this.makeRoom();
    id = this.insert(words, this.leafBits, KIND_LEAF);
    this.admitLeaf(id, count);
    let child = id;
    const w2 = this.scratch2;
    for (let li = this.levels.length - 1; li >= 0; li--) {
      const lvl = this.levels[li]!;
      w2.set(words);
      applyMask(w2, this.family, lvl);
      let agg = this.find(w2, lvl);
      const existed = agg >= 0;
      if (!existed) agg = this.insert(w2, lvl, KIND_AGGREGATE);
      this.parent[child] = agg;
      // leaves beneath (kept in prev): every aggregate on the chain gains one
      let p = agg;
      while (p >= 0) {
        this.prev[p] = this.prev[p]! + 1;
        p = this.parent[p]!;
      }
      if (existed) break;
      child = agg;
    }
    return id;
  }

  // ---- keys ------------------------------------------------------------------------------

  /**
   * Parses `ip` or `ip/mask` for this series. Garbage is an InvalidKeyError; an address of
   * the other family is `{ok: false, reason: 'family'}` (a cidr series ignores IPv6 keys).
   */
  parseKey(key: string): KeyResult {
    const p = parsePrefix(key);
    if (!p) throw new InvalidKeyError(`series "${this.name}": "${key}" is not an IP address or CIDR prefix`);
    if (p.family !== this.family) return { ok: false, reason: 'family' };
    return { ok: true, words: p.words, mask: p.mask };
  }

  private loadKey(key: string): number {
    const r = this.parseKey(key);
    if (!r.ok) return -1;
    this.scratch.set(r.words);
    return r.mask;
  }

  // ---- operations ------------------------------------------------------------------------

  /**
   * Adds `count` (may be negative) to the current window for an address (or, with
   * store_prefix, a prefix at least that long). Returns false when the key belongs to the
   * other address family and was ignored.
   */
  add(key: string, count = 1): boolean {
    this.checkCount(count);
    const mask = this.loadKey(key);
    if (mask < 0) return false;
    if (mask < this.leafBits) {
      throw new InvalidKeyError(`series "${this.name}": add takes an address, not the prefix "${key}"`);
    }
    this.advance();
    this.addAt(this.scratch, 0, count);
    this.noteChange();
    return true;
  }

  /**
   * `add` for an address parsed once by the caller (the hot path: no text to parse). Returns
   * false when the address belongs to the other family and was ignored.
   */
  addAddress(addr: ClientAddress, count = 1): boolean {
    this.checkCount(count);
    if (addr.family !== this.family) return false;
    this.advance();
    this.scratch.set(addr.words);
    this.addAt(this.scratch, 0, count);
    this.noteChange();
    return true;
  }

  /** `count` of the prefix of a parsed address at `mask` (clamped to the family's bits); 0 for the other family. */
  countAddress(addr: ClientAddress, mask: number, startv = 0, endv = startv): number {
    const last = this.checkRange(startv, endv);
    if (addr.family !== this.family) return 0;
    this.advance();
    this.scratch.set(addr.words);
    return this.countWords(this.scratch, Math.min(Math.max(0, mask), FAMILY_BITS[this.family]), startv, last);
  }

  /** Adds `count` in window v to the leaf of `words`; returns the leaf id. */
  private addAt(words: Uint32Array, v: number, count: number): number {
    applyMask(words, this.family, this.leafBits);
    const leaf = this.leafFor(words, count);
    const s = this.slotOf(this.current - v);
    this.totals[s] = this.totals[s]! + count;
    const arr = this.slots[s]!;
    for (let id = leaf; id >= 0; id = this.parent[id]!) arr[id] = clampCount(arr[id]! + count);
    return leaf;
  }

  /** Sum of windows startv..endv for `ip` or `ip/mask`; 0 for a key of the other family. */
  count(key: string, startv = 0, endv = startv): number {
    const last = this.checkRange(startv, endv);
    const mask = this.loadKey(key);
    if (mask < 0) return 0;
    this.advance();
    return this.countWords(this.scratch, mask, startv, last);
  }

  /** Per-window counts (index v = window v) for `ip` or `ip/mask`. */
  windowCounts(key: string): number[] {
    const out: number[] = [];
    for (let v = 0; v < this.windows; v++) out.push(this.count(key, v, v));
    return out;
  }

  private countWords(words: Uint32Array, mask: number, startv: number, last: number): number {
    if (startv > last) return 0;
    if (mask === 0) return this.sumTotals(startv, last);
    if (mask >= this.leafBits || this.levelSet[mask] === 1) {
      const lvl = mask >= this.leafBits ? this.leafBits : mask;
      applyMask(words, this.family, lvl);
      const id = this.find(words, lvl);
      return id < 0 ? 0 : this.sumEntry(id, startv, last);
    }
    applyMask(words, this.family, mask);
    // Nothing under the enclosing kept level means nothing under this prefix either.
    let coarser = 0;
    for (const l of this.levels) if (l < mask) coarser = l;
    if (coarser > 0) {
      const w2 = this.scratch2;
      w2.set(words);
      applyMask(w2, this.family, coarser);
      if (this.find(w2, coarser) < 0) return 0;
    }
    let finer = this.leafBits;
    for (const l of this.levels) {
      if (l > mask) {
        finer = l;
        break;
      }
    }
    const gap = finer - mask;
    let sum = 0;
    if (gap <= MAX_ENUMERATE_BITS) {
      const child = new Uint32Array(4);
      for (let c = 0; c < 1 << gap; c++) {
        child.set(words);
        for (let b = 0; b < gap; b++) {
          if ((c >> (gap - 1 - b)) & 1) {
            const pos = mask + b;
            const wi = pos >> 5;
            child[wi] = (child[wi]! | (1 << (31 - (pos & 31)))) >>> 0;
          }
        }
        const id = this.find(child, finer);
        if (id >= 0) sum += this.sumEntry(id, startv, last);
      }
      return sum;
    }
    for (let id = 0; id < this.highWater; id++) {
      if (this.kind[id] === KIND_FREE || this.level[id] !== finer) continue;
      if (prefixContains(words, mask, this.keys.subarray(id * this.nwords, id * this.nwords + this.nwords), finer, this.nwords)) {
        sum += this.sumEntry(id, startv, last);
      }
    }
    return sum;
  }

  /** Removes `ip` (or every address inside `ip/mask`) from all windows; returns keys removed. */
  removeItem(key: string): number {
    const mask = this.loadKey(key);
    if (mask < 0) return 0;
    this.advance();
    const words = this.scratch;
    if (mask >= this.leafBits) {
      applyMask(words, this.family, this.leafBits);
      const id = this.find(words, this.leafBits);
      if (id < 0) return 0;
      this.removeLeaf(id);
      this.noteChange();
      return 1;
    }
    const target = Uint32Array.from(words);
    const doomed: number[] = [];
    for (let id = 0; id < this.highWater; id++) {
      if (!isLeafKind(this.kind[id])) continue;
      const off = id * this.nwords;
      if (prefixContains(target, mask, this.keys.subarray(off, off + this.nwords), this.leafBits, this.nwords)) doomed.push(id);
    }
    for (const id of doomed) this.removeLeaf(id);
    if (doomed.length > 0) {
      this.noteChange();
      this.maybeCompact();
    }
    return doomed.length;
  }

  /** The heaviest prefixes at `mask` (default: the stored key length) over windows startv..endv. */
  top(opts: TopOptions = {}): TopEntry[] {
    const it = this.topScan(opts);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
    }
  }

  /**
   * The same, giving the event loop a turn every SCAN_CHUNK entries: a top at a mask that is
   * not kept walks every address, and must not stall the SMTP sessions meanwhile.
   */
  async topAsync(opts: TopOptions = {}): Promise<TopEntry[]> {
    const it = this.topScan(opts);
    try {
      for (;;) {
        const r = it.next();
        if (r.done) return r.value;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      it.return([]); // releases the pin if the scan was left half way
    }
  }

  private *topScan(opts: TopOptions): Generator<void, TopEntry[]> {
    const full = FAMILY_BITS[this.family];
    const asked = opts.mask ?? this.leafBits;
    if (!Number.isInteger(asked) || asked < 0 || asked > full) {
      throw new InvalidKeyError(`series "${this.name}": mask ${opts.mask} is not a prefix length from 0 to ${full}`);
    }
    const mask = Math.min(asked, this.leafBits);
    const startv = opts.startv ?? 0;
    const last = this.checkRange(startv, opts.endv ?? this.windows - 1);
    const limit = opts.limit ?? 10;
    this.advance();
    const heap = new TopK(limit);
    const zero = new Uint32Array(4);
    if (mask === 0) {
      heap.offer(formatPrefix(this.family, zero, 0), this.sumTotals(startv, last));
      return heap.result();
    }
    const nw = this.nwords;
    if (mask === this.leafBits || this.levelSet[mask] === 1) {
      for (let id = 0; id < this.highWater; id++) {
        if (this.kind[id] === KIND_FREE || this.level[id] !== mask) continue;
        const c = this.sumEntry(id, startv, last);
        if (heap.wouldAccept(c)) heap.offer(formatPrefix(this.family, this.keys.subarray(id * nw, id * nw + nw), mask), c);
      }
      return heap.result();
    }
    let finer = this.leafBits;
    for (const l of this.levels) {
      if (l > mask) {
        finer = l;
        break;
      }
    }
    // Group by the masked key as a number (IPv4) or a compact word string (IPv6); only the
    // groups that make the top are formatted. The scan yields (topAsync): ids are pinned so a
    // compaction meanwhile cannot move entries behind it.
    const groups = new Map<number | string, number>();
    const w = new Uint32Array(4);
    const v4mask = mask === 0 ? 0 : (0xffffffff << (32 - mask)) >>> 0;
    const release = this.pinIds();
    try {
      for (let id = 0; id < this.highWater; id++) {
        if ((id & SCAN_CHUNK_MASK) === SCAN_CHUNK_MASK) yield;
        if (this.kind[id] === KIND_FREE || this.level[id] !== finer) continue;
        let k: number | string;
        if (nw === 1) k = (this.keys[id]! & v4mask) >>> 0;
        else {
          w.set(this.keys.subarray(id * nw, id * nw + nw));
          applyMask(w, this.family, mask);
          k = `${w[0]},${w[1]},${w[2]},${w[3]}`;
        }
        groups.set(k, (groups.get(k) ?? 0) + this.sumEntry(id, startv, last));
      }
    } finally {
      release();
    }
    for (const [k, c] of groups) {
      if (!heap.wouldAccept(c)) continue;
      if (typeof k === 'number') w[0] = k;
      else k.split(',').forEach((x, i) => (w[i] = Number(x)));
      heap.offer(formatPrefix(this.family, w, mask), c);
    }
    return heap.result();
  }

  protected override describeSnapshot(snap: SnapshotHead): void {
    if (this.leafBits !== FAMILY_BITS[this.family]) snap.store_prefix = this.leafBits;
  }

  private readonly restoreWords = new Uint32Array(4);

  protected override selectRestoreKey(key: string): boolean {
    const r = typeof key === 'string' ? parsePrefix(key) : null;
    if (!r || r.family !== this.family || r.mask < this.leafBits) return false;
    this.restoreWords.set(r.words);
    return true;
  }

  protected override restoreCount(v: number, count: number): number {
    this.scratch.set(this.restoreWords);
    return this.addAt(this.scratch, v, count);
  }
}
