/**
 * DistinctTable: the distinct sets of many keys × `windows` ring slots, the storage a distinct
 * series needs (ids and slots as in windowed.ts: the series owns ids, the clock and the ring).
 *
 * Why not one DistinctSketch per key and window: in V8 every typed array costs about 200 bytes
 * before its first element, so four small sketches per key would cost 1 KB. Here the small sets
 * of a key share one block in one arena (a Uint32Array for the whole table): one entry per
 * distinct value of the key, `[lo, hi, mask…]` (its 64-bit hash and a bit per slot that has
 * seen it), sorted by `lo`. A key with 8 values over 4 windows holds 8 entries × 12 bytes plus
 * 13 bytes of per-key bookkeeping. A slot whose set passes EXACT_MAX values moves into its own
 * DistinctSketch (sparse, then dense registers); counts follow the DistinctSketch rule: a union
 * of at most EXACT_MAX values is exact, a larger one the HLL estimate (= PFCOUNT).
 *
 * Blocks come in power-of-two size classes with a free list per class; clearSlot() (a window
 * rotation) compacts the arena once most of it is free.
 */
import { DistinctSketch, hashValue, type UnionSink } from './distinct.js';
import type { Hash64 } from './murmur64.js';
import { EXACT_MAX, sharedUnionCounter } from './union-counter.js';

const BIG = 255; // slotN marker: the slot lives in a DistinctSketch
const MIN_CLASS = 1; // a new key's block holds 2 entries
const LO = 0;
const HI = 1;
const MASK = 2;
const NONE = 0xffffffff;

const hashOut: Hash64 = { hi: 0, lo: 0 };

export class DistinctTable {
  readonly windows: number;
  private readonly maskWords: number;
  private readonly stride: number;
  private capacity = 0;
  /** Per id: block offset in the arena (u32 units), -1 when the key holds no small entries. */
  private off = new Int32Array(0);
  /** Per id: size class of its block (capacity 2^cls entries). */
  private cls = new Uint8Array(0);
  /** Per id: entries in its block. */
  private len = new Int32Array(0);
  /** [id * windows + slot]: distinct values in that slot (≤ EXACT_MAX), or BIG. */
  private slotN = new Uint8Array(0);
  private arena = new Uint32Array(1024);
  private top = 0;
  /** u32 words in live blocks (their full class size). */
  private liveWords = 0;
  private readonly freeHead: Int32Array;
  private readonly big = new Map<number, DistinctSketch>();
  private readonly sel: Uint32Array;

  constructor(windows: number, initialIds = 64) {
    if (!Number.isInteger(windows) || windows < 1 || windows > 1024) throw new RangeError('windows must be an integer from 1 to 1024');
    this.windows = windows;
    this.maskWords = Math.ceil(windows / 32);
    this.stride = 2 + this.maskWords;
    this.freeHead = new Int32Array(Math.ceil(Math.log2(EXACT_MAX * windows)) + 2).fill(-1);
    this.sel = new Uint32Array(this.maskWords);
    this.resize(initialIds);
  }

  /** Grows (or shrinks) the id space; ids ≥ capacity must be removed first when shrinking. */
  resize(capacity: number): void {
    const W = this.windows;
    const grow = <T extends Int32Array | Uint8Array>(a: T, n: number, ctor: new (n: number) => T, fill = 0): T => {
      const b = new ctor(n);
      if (fill !== 0) b.fill(fill);
      b.set(a.subarray(0, Math.min(a.length, n)) as never);
      return b;
    };
    this.off = grow(this.off, capacity, Int32Array, -1);
    this.cls = grow(this.cls, capacity, Uint8Array);
    this.len = grow(this.len, capacity, Int32Array);
    this.slotN = grow(this.slotN, capacity * W, Uint8Array);
    this.capacity = capacity;
  }

  /** Adds a value to key `id`'s set in ring slot `slot`; true when that set changed. */
  add(id: number, slot: number, value: string): boolean {
    hashValue(value, hashOut);
    return this.addParts(id, slot, hashOut.hi, hashOut.lo);
  }

  addParts(id: number, slot: number, hi: number, lo: number): boolean {
    this.check(id, slot);
    const k = id * this.windows + slot;
    const sn = this.slotN[k]!;
    if (sn === BIG) return this.big.get(k)!.addParts(hi, lo);
    let at = this.off[id]! < 0 ? ~0 : this.find(id, hi, lo);
    const word = MASK + (slot >>> 5);
    const bit = 1 << (slot & 31);
    if (at >= 0 && (this.arena[this.off[id]! + at * this.stride + word]! & bit) !== 0) return false;
    if (sn === EXACT_MAX) return this.promote(id, slot).addParts(hi, lo);
    if (at < 0) {
      at = ~at;
      this.insert(id, at, hi, lo);
    }
    const p = this.off[id]! + at * this.stride + word;
    this.arena[p] = this.arena[p]! | bit;
    this.slotN[k] = sn + 1;
    return true;
  }

  /** Distinct values of key `id` over the ring slots given (their union). */
  count(id: number, slots: ArrayLike<number>): number {
    if (slots.length === 1) {
      this.check(id, slots[0]!);
      const k = id * this.windows + slots[0]!;
      const sn = this.slotN[k]!;
      return sn === BIG ? this.big.get(k)!.count() : sn;
    }
    return this.countUnion([id], slots);
  }

  /** Distinct values of the union of several keys over the slots given (a prefix = its addresses). */
  countUnion(ids: ArrayLike<number>, slots: ArrayLike<number>): number {
    const c = sharedUnionCounter;
    c.reset();
    this.select(slots);
    for (let j = 0; j < ids.length; j++) this.feed(c, ids[j]!, slots);
    const n = c.count();
    c.reset();
    return n;
  }

  /** The union of key `id` over the slots as one sketch (toRedis, toJSON, merging elsewhere). */
  sketch(id: number, slots: ArrayLike<number>): DistinctSketch {
    const out = new DistinctSketch();
    this.select(slots);
    this.feed({ addHash: (hi, lo) => out.addParts(hi, lo), addRegister: () => {}, sketch: (s) => out.merge(s) }, id, slots);
    return out;
  }

  /** Adds a sketch's values into key `id`'s slot (restoring a snapshot, reading back from Redis). */
  mergeInto(id: number, slot: number, s: DistinctSketch): void {
    this.check(id, slot);
    const k = id * this.windows + slot;
    if (this.slotN[k] === BIG) this.big.get(k)!.merge(s);
    else if (s.exact) s.feed({ addHash: (hi, lo) => void this.addParts(id, slot, hi, lo), addRegister: () => {} });
    else this.promote(id, slot).merge(s);
  }

  /** Empties one ring slot for every key (the window it held closed out of coverage). */
  clearSlot(slot: number): void {
    this.check(0, slot);
    const W = this.windows;
    const word = MASK + (slot >>> 5);
    const keep = ~(1 << (slot & 31));
    for (let id = 0; id < this.capacity; id++) {
      this.slotN[id * W + slot] = 0;
      const base = this.off[id]!;
      if (base < 0) continue;
      for (let e = 0; e < this.len[id]!; e++) {
        const p = base + e * this.stride + word;
        this.arena[p] = this.arena[p]! & keep;
      }
      this.dropEmptyEntries(id);
    }
    for (const k of this.big.keys()) if (k % W === slot) this.big.delete(k);
    if (this.arena.length > 4096 && this.liveWords * 4 < this.arena.length) this.compact();
  }

  /** Forgets key `id` in every slot (eviction, remove_item). */
  remove(id: number): void {
    this.check(id, 0);
    const W = this.windows;
    for (let s = 0; s < W; s++) {
      if (this.slotN[id * W + s] === BIG) this.big.delete(id * W + s);
      this.slotN[id * W + s] = 0;
    }
    if (this.off[id]! >= 0) this.releaseBlock(id);
  }

  /** True when key `id` holds no value in any slot. */
  isEmpty(id: number): boolean {
    this.check(id, 0);
    for (let s = 0; s < this.windows; s++) if (this.slotN[id * this.windows + s] !== 0) return false;
    return true;
  }

  /** Bytes held: the arena, the per-key arrays and the sketches of large slots (payloads). */
  bytes(): number {
    let b = this.arena.byteLength + this.off.byteLength + this.cls.byteLength + this.len.byteLength + this.slotN.byteLength;
    for (const s of this.big.values()) b += s.bytes();
    return b;
  }

  /**
   * Follows a renumbering of ids (the series compacted its entries): `map[old]` is the new id,
   * -1 for an id that is gone (its sets are dropped), for old ids below `oldCount`; the id space
   * becomes `capacity`.
   */
  remap(map: Int32Array, oldCount: number, capacity: number): void {
    const W = this.windows;
    const off = new Int32Array(capacity).fill(-1);
    const cls = new Uint8Array(capacity);
    const len = new Int32Array(capacity);
    const slotN = new Uint8Array(capacity * W);
    for (let id = 0; id < Math.min(oldCount, this.capacity); id++) {
      const to = map[id]!;
      if (to < 0) {
        if (this.off[id]! >= 0) this.releaseBlock(id);
        continue;
      }
      off[to] = this.off[id]!;
      cls[to] = this.cls[id]!;
      len[to] = this.len[id]!;
      slotN.set(this.slotN.subarray(id * W, id * W + W), to * W);
    }
    const big = [...this.big];
    this.big.clear();
    for (const [k, sketch] of big) {
      const id = Math.floor(k / W);
      const to = id < oldCount ? map[id]! : -1;
      if (to >= 0) this.big.set(to * W + (k % W), sketch);
    }
    this.off = off;
    this.cls = cls;
    this.len = len;
    this.slotN = slotN;
    this.capacity = capacity;
  }

  /** Rebuilds the arena with no free blocks, each block shrunk to the class its entries need. */
  compact(): void {
    let words = 0;
    const need = (n: number): number => Math.max(MIN_CLASS, Math.ceil(Math.log2(Math.max(1, n))));
    for (let id = 0; id < this.capacity; id++) if (this.off[id]! >= 0) words += (1 << need(this.len[id]!)) * this.stride;
    const arena = new Uint32Array(Math.max(1024, Math.ceil(words * 1.25)));
    let top = 0;
    for (let id = 0; id < this.capacity; id++) {
      const base = this.off[id]!;
      if (base < 0) continue;
      const c = need(this.len[id]!);
      arena.set(this.arena.subarray(base, base + this.len[id]! * this.stride), top);
      this.off[id] = top;
      this.cls[id] = c;
      top += (1 << c) * this.stride;
    }
    this.arena = arena;
    this.top = top;
    this.liveWords = top;
    this.freeHead.fill(-1);
  }

  // ---- internals ------------------------------------------------------------------------------

  private check(id: number, slot: number): void {
    if (!(slot >= 0 && slot < this.windows && (slot | 0) === slot)) throw new RangeError(`slot ${slot} is not in 0..${this.windows - 1}`);
    if (!(id >= 0 && (id | 0) === id)) throw new RangeError(`id ${id} is not a non-negative integer`);
    if (id >= this.capacity) this.resize(Math.max(id + 1, Math.ceil(this.capacity * 1.5)));
  }

  private select(slots: ArrayLike<number>): void {
    this.sel.fill(0);
    for (let j = 0; j < slots.length; j++) {
      const s = slots[j]!;
      this.check(0, s);
      this.sel[s >>> 5] = this.sel[s >>> 5]! | (1 << (s & 31));
    }
  }

  /** Feeds key `id`'s values in the selected slots (this.sel) to a union counter. */
  private feed(c: UnionSink & { sketch?: (s: DistinctSketch) => void }, id: number, slots: ArrayLike<number>): void {
    const W = this.windows;
    for (let j = 0; j < slots.length; j++) {
      const k = id * W + slots[j]!;
      if (this.slotN[k] !== BIG) continue;
      const s = this.big.get(k)!;
      if (c.sketch) c.sketch(s);
      else s.feed(c);
    }
    const base = this.off[id]!;
    if (base < 0) return;
    const st = this.stride;
    const mw = this.maskWords;
    for (let e = 0, p = base; e < this.len[id]!; e++, p += st) {
      let hit = false;
      for (let w = 0; w < mw && !hit; w++) hit = (this.arena[p + MASK + w]! & this.sel[w]!) !== 0;
      if (hit) c.addHash(this.arena[p + HI]!, this.arena[p + LO]!);
    }
  }

  /** Entry index of the hash in key `id`'s block, or ~(insertion point). Entries sorted by lo. */
  private find(id: number, hi: number, lo: number): number {
    const base = this.off[id]!;
    const st = this.stride;
    const n = this.len[id]!;
    let a = 0;
    let b = n;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (this.arena[base + mid * st + LO]! < lo) a = mid + 1;
      else b = mid;
    }
    for (let e = a; e < n && this.arena[base + e * st + LO] === lo; e++) {
      if (this.arena[base + e * st + HI] === hi) return e;
    }
    return ~a;
  }

  /** Inserts an entry with no slot bits at index `at` of key `id`'s block (growing the block). */
  private insert(id: number, at: number, hi: number, lo: number): void {
    const st = this.stride;
    const n = this.len[id]!;
    if (this.off[id]! < 0) {
      this.off[id] = this.alloc(MIN_CLASS);
      this.cls[id] = MIN_CLASS;
    } else if (n === 1 << this.cls[id]!) {
      const c = this.cls[id]! + 1;
      const p = this.alloc(c);
      const old = this.off[id]!;
      this.arena.copyWithin(p, old, old + n * st);
      this.release(old, this.cls[id]!);
      this.off[id] = p;
      this.cls[id] = c;
    }
    const base = this.off[id]!;
    this.arena.copyWithin(base + (at + 1) * st, base + at * st, base + n * st);
    const q = base + at * st;
    this.arena[q + LO] = lo;
    this.arena[q + HI] = hi;
    this.arena.fill(0, q + MASK, q + st);
    this.len[id] = n + 1;
  }

  /** Moves key `id`'s slot into a DistinctSketch and drops entries no other slot uses. */
  private promote(id: number, slot: number): DistinctSketch {
    const s = new DistinctSketch();
    const base = this.off[id]!;
    if (base >= 0) {
      const word = MASK + (slot >>> 5);
      const bit = 1 << (slot & 31);
      for (let e = 0, p = base; e < this.len[id]!; e++, p += this.stride) {
        if ((this.arena[p + word]! & bit) === 0) continue;
        s.addParts(this.arena[p + HI]!, this.arena[p + LO]!);
        this.arena[p + word] = this.arena[p + word]! & ~bit;
      }
      this.dropEmptyEntries(id);
    }
    const k = id * this.windows + slot;
    this.slotN[k] = BIG;
    this.big.set(k, s);
    return s;
  }

  private dropEmptyEntries(id: number): void {
    const base = this.off[id]!;
    const st = this.stride;
    let o = 0;
    for (let e = 0; e < this.len[id]!; e++) {
      const p = base + e * st;
      let any = false;
      for (let w = 0; w < this.maskWords && !any; w++) any = this.arena[p + MASK + w] !== 0;
      if (!any) continue;
      if (o !== e) this.arena.copyWithin(base + o * st, p, p + st);
      o++;
    }
    this.len[id] = o;
    if (o === 0) this.releaseBlock(id);
  }

  private releaseBlock(id: number): void {
    this.release(this.off[id]!, this.cls[id]!);
    this.off[id] = -1;
    this.len[id] = 0;
  }

  private alloc(c: number): number {
    const size = (1 << c) * this.stride;
    this.liveWords += size;
    const head = this.freeHead[c]!;
    if (head >= 0) {
      const next = this.arena[head]!;
      this.freeHead[c] = next === NONE ? -1 : next;
      return head;
    }
    if (this.top + size > this.arena.length) {
      const grown = new Uint32Array(Math.max(this.top + size, Math.ceil(this.arena.length * 1.5)));
      grown.set(this.arena.subarray(0, this.top));
      this.arena = grown;
    }
    const p = this.top;
    this.top += size;
    return p;
  }

  private release(p: number, c: number): void {
    this.liveWords -= (1 << c) * this.stride;
    this.arena[p] = this.freeHead[c]! < 0 ? NONE : this.freeHead[c]!;
    this.freeHead[c] = p;
  }
}
