/**
 * The index of a cidr series: each entry's key words and prefix length, the chain from a leaf
 * (an address, or a stored prefix with store_prefix) up through its aggregates (the kept
 * `levels`), and an open-addressing hash from (words, length) to entry. CidrSeries adds the
 * operations (add, count, remove, top) on top of it.
 */
import type { Clock } from './clock.js';
import { SeriesDefinitionError } from '../errors.js';
import { FAMILY_BITS, type Family, applyMask, formatPrefix } from './address.js';
import { KIND_AGGREGATE, KIND_FREE, KIND_LEAF, growArray } from './entry-table.js';
import { WindowedSeries } from './windowed.js';
import { DEFAULT_LEVELS, type SeriesDefinition } from './types.js';

export abstract class CidrIndex extends WindowedSeries {
  readonly family: Family;
  /** Bits kept per stored key: 32, 128, or store_prefix. */
  readonly leafBits: number;
  /** Aggregate prefix lengths, ascending, all in 1..leafBits-1. */
  readonly levels: readonly number[];
  protected readonly nwords: number;
  protected readonly levelSet: Uint8Array;

  protected keys = new Uint32Array(0);
  protected level = new Uint8Array(0);
  /** Leaf → its finest aggregate → … → coarsest aggregate; -1 ends the chain. */
  protected parent = new Int32Array(0);
  private index = new Int32Array(0); // id + 1, 0 = empty; open addressing, linear probing
  private indexMask = 0;
  protected readonly scratch = new Uint32Array(4);
  protected readonly scratch2 = new Uint32Array(4);

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
    // A distinct series keeps a union set per aggregate: none unless asked for (its policies' masks).
    const requested = def.options?.levels ?? (def.options?.distinct ? [] : DEFAULT_LEVELS[this.family]);
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
    this.level = growArray(this.level, Uint8Array, capacity);
    this.parent = growArray(this.parent, Int32Array, capacity);
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
      this.detachCounts(p, id);
      const up = this.parent[p]!;
      this.prev[p] = this.prev[p]! - 1;
      if (this.prev[p] === 0) {
        this.indexDelete(p);
        this.freeId(p);
      }
      p = up;
    }
  }

  /** Takes a leaf's counts out of one of its aggregates (a distinct series keeps the values: a set cannot subtract). */
  protected detachCounts(agg: number, leaf: number): void {
    for (let s = 0; s < this.windows; s++) this.slots[s]![agg] = this.clamp(this.slots[s]![agg]! - this.slots[s]![leaf]!);
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

  protected find(words: Uint32Array, lvl: number): number {
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
  protected leafFor(words: Uint32Array, count: number): number {
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
}
