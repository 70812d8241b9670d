/**
 * Where a series keeps its entries: one Int32Array of counts per ring slot and per-entry arrays
 * (structure of arrays), ids handed out from a free list, pins that keep ids stable across
 * turns of the event loop, compaction, and a segmented least-recently-touched list over leaf
 * entries that decides which key goes when max_keys is reached.
 *
 * Eviction (max_keys) is a segmented LRU: a new key enters the *probation* segment; a key
 * added to again (or whose first add counts 2 or more) moves to the *protected* segment.
 * Room is made by evicting the probation tail, and the protected tail only when probation is
 * empty. Protected holds at most 90% of max_keys (its tail is demoted to probation's head),
 * so new keys always have room to prove themselves. One-shot keys (a flood of distinct
 * senders, addresses) then only push out each other, never the keys a policy is counting.
 * The segment lives in the `kind` byte: no extra bytes per key.
 *
 * Windows, keys and counts belong to the subclasses (windowed.ts, then the series types).
 */
import { MAX_COUNT, MAX_WIDE_COUNT, MIN_COUNT, MIN_WIDE_COUNT } from './counts.js';

export const KIND_FREE = 0;
/** A leaf in the probation segment (seen once). */
export const KIND_LEAF = 1;
export const KIND_AGGREGATE = 2;
/** A leaf in the protected segment (seen again); shares the KIND_LEAF bit. */
export const KIND_LEAF_PROTECTED = 5;
const PROTECTED_BIT = 4;

/** True for a leaf in either LRU segment. */
export function isLeafKind(kind: number | undefined): boolean {
  return kind !== undefined && (kind & KIND_LEAF) !== 0;
}

const INITIAL_CAPACITY = 64;
/** Share of max_keys the protected segment may hold. */
export const PROTECTED_SHARE = 0.9;
/** Arrays shrink when live entries fall below capacity / COMPACT_BELOW (to twice the live entries). */
const COMPACT_BELOW = 4;
/** Below this capacity compaction is not worth a pass. */
const COMPACT_MIN_CAPACITY = 4096;

/** A window's counts: 32-bit integers, or doubles for a `wide` series (see counts.ts). */
export type CountArray = Int32Array | Float64Array;

/** A copy of `a` with `capacity` entries (cut short, or zero-filled past the old length). */
export function growArray<T extends Int32Array | Uint8Array | Float64Array>(a: T, ctor: new (n: number) => T, capacity: number): T {
  const b = new ctor(capacity);
  b.set(a.subarray(0, Math.min(a.length, capacity)) as never);
  return b;
}

export abstract class EntryTable {
  readonly windows: number;
  readonly maxKeys: number;
  /** Leaves the protected segment may hold: floor(max_keys × 0.9). */
  readonly protectedCap: number;
  /** Window counts saturate at these bounds (see clamp). */
  readonly maxCount: number;
  readonly minCount: number;
  private readonly countArray: new (n: number) => CountArray;
  /** Bytes per window count (4, or 8 for a wide series). */
  protected readonly countBytes: number;

  protected capacity = 0;
  /**
   * slots[s][id]: count of entry id in ring slot s (absolute window w lives in slot w % windows).
   * Counts are 32-bit signed integers saturating at ±2^31, or for a wide series doubles
   * saturating at ±(2^53 - 1) (see clamp).
   */
  protected slots: CountArray[] = [];
  protected kind = new Uint8Array(0);
  protected prev = new Int32Array(0);
  protected next = new Int32Array(0);
  /** Next id never handed out; ids below it are either live or on the free list. */
  protected highWater = 0;
  protected freeHead = -1;
  // Two LRU lists over leaves, linked through prev/next: head = most recently touched.
  protected probHead = -1;
  protected probTail = -1;
  protected protHead = -1;
  protected protTail = -1;
  protected protCount = 0;
  protected leafCount = 0;
  protected entryCount = 0;
  /** Restore places each key itself once its counts are in (see restore). */
  protected restoring = false;
  /** Keys evicted by max_keys since the series was built. */
  private evictedCounter = 0;
  /** Pins held (open snapshot cursors, async scans): while any is, freed ids are not reused and nothing is compacted. */
  private pins = 0;
  /** Ids freed while pinned, linked through `next`; back on the free list once the last pin is released. */
  private heldHead = -1;

  constructor(windows: number, maxKeys: number, wide = false) {
    this.windows = windows;
    this.maxKeys = maxKeys;
    this.protectedCap = Math.floor(maxKeys * PROTECTED_SHARE);
    this.maxCount = wide ? MAX_WIDE_COUNT : MAX_COUNT;
    this.minCount = wide ? MIN_WIDE_COUNT : MIN_COUNT;
    this.countArray = wide ? Float64Array : Int32Array;
    this.countBytes = wide ? 8 : 4;
  }

  /** A window count saturated to this table's bounds instead of wrapping. */
  protected clamp(v: number): number {
    return v > this.maxCount ? this.maxCount : v < this.minCount ? this.minCount : v;
  }


  /** Subclasses call this at the end of their constructor, once their own fields exist. */
  protected initStorage(): void {
    this.resize(INITIAL_CAPACITY);
  }

  /** Keys evicted to stay within max_keys since the series was built. */
  evicted(): number {
    return this.evictedCounter;
  }

  /** Subclass arrays follow the base arrays on resize. */
  protected abstract resizeExtra(capacity: number): void;
  /** Removes a leaf entirely (index, aggregates, counts, LRU, id); eviction calls it. */
  protected abstract removeLeaf(id: number): void;

  protected resize(capacity: number): void {
    this.slots = Array.from({ length: this.windows }, (_, s) => growArray(this.slots[s] ?? new this.countArray(0), this.countArray, capacity));
    this.kind = growArray(this.kind, Uint8Array, capacity);
    this.prev = growArray(this.prev, Int32Array, capacity);
    this.next = growArray(this.next, Int32Array, capacity);
    this.resizeExtra(capacity);
    this.capacity = capacity;
  }

  protected allocId(kind: number): number {
    let id: number;
    if (this.freeHead >= 0) {
      id = this.freeHead;
      this.freeHead = this.next[id]!;
    } else {
      if (this.highWater === this.capacity) this.resize(Math.ceil(this.capacity * 1.5));
      id = this.highWater++;
    }
    this.kind[id] = kind;
    for (let s = 0; s < this.windows; s++) this.slots[s]![id] = 0;
    this.prev[id] = -1;
    this.next[id] = -1;
    this.entryCount++;
    if (isLeafKind(kind)) {
      this.leafCount++;
      this.lruPush(id, false);
    }
    return id;
  }

  protected freeId(id: number): void {
    if (isLeafKind(this.kind[id])) {
      this.lruUnlink(id);
      this.leafCount--;
    }
    this.kind[id] = KIND_FREE;
    this.entryCount--;
    if (this.pins > 0) {
      // a snapshot cursor or scan still walks the ids it captured: never hand this one to another key meanwhile
      this.next[id] = this.heldHead;
      this.heldHead = id;
    } else {
      this.next[id] = this.freeHead;
      this.freeHead = id;
    }
  }

  /** Puts a leaf at the head of a segment (and sets its kind accordingly). */
  protected lruPush(id: number, prot: boolean): void {
    this.prev[id] = -1;
    if (prot) {
      this.kind[id] = KIND_LEAF_PROTECTED;
      this.next[id] = this.protHead;
      if (this.protHead >= 0) this.prev[this.protHead] = id;
      this.protHead = id;
      if (this.protTail < 0) this.protTail = id;
      this.protCount++;
    } else {
      this.kind[id] = KIND_LEAF;
      this.next[id] = this.probHead;
      if (this.probHead >= 0) this.prev[this.probHead] = id;
      this.probHead = id;
      if (this.probTail < 0) this.probTail = id;
    }
  }

  protected lruUnlink(id: number): void {
    const prot = (this.kind[id]! & PROTECTED_BIT) !== 0;
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p >= 0) this.next[p] = n;
    else if (prot) this.protHead = n;
    else this.probHead = n;
    if (n >= 0) this.prev[n] = p;
    else if (prot) this.protTail = p;
    else this.probTail = p;
    if (prot) this.protCount--;
    this.prev[id] = -1;
    this.next[id] = -1;
  }

  /** Moves a leaf to the head of the protected segment, demoting the protected tail past the cap. */
  protected promote(id: number): void {
    this.lruUnlink(id);
    this.lruPush(id, true);
    if (this.protCount > this.protectedCap) {
      const t = this.protTail;
      this.lruUnlink(t);
      this.lruPush(t, false);
    }
  }

  /** An add to an existing leaf: protected leaves move to the head, probation leaves are promoted. */
  protected touchLeaf(id: number): void {
    if (this.restoring) return;
    if (this.kind[id] === KIND_LEAF_PROTECTED) {
      if (this.protHead === id) return;
      this.lruUnlink(id);
      this.lruPush(id, true);
    } else {
      this.promote(id);
    }
  }

  /** A leaf just created by an add of `count`: an add worth two or more events proves it at once. */
  protected admitLeaf(id: number, count: number): void {
    if (!this.restoring && count >= 2) this.promote(id);
  }

  /**
   * Makes room for one more leaf: evicts the least recently touched probation leaf, and the
   * least recently touched protected one only when probation is empty.
   */
  protected makeRoom(): void {
    while (this.leafCount >= this.maxKeys) {
      const victim = this.probTail >= 0 ? this.probTail : this.protTail;
      if (victim < 0) return;
      this.removeLeaf(victim);
      this.evictedCounter++;
    }
  }

  /** Forgets every entry (a full reset when the whole coverage elapsed); resize() makes new arrays after. */
  protected clearEntries(): void {
    this.capacity = 0;
    this.slots = [];
    this.kind = new Uint8Array(0);
    this.prev = new Int32Array(0);
    this.next = new Int32Array(0);
    this.highWater = 0;
    this.freeHead = -1;
    this.heldHead = -1; // the ids an open cursor captured now point past highWater or at new keys it skips (see openSnapshot)
    this.probHead = -1;
    this.probTail = -1;
    this.protHead = -1;
    this.protTail = -1;
    this.protCount = 0;
    this.leafCount = 0;
    this.entryCount = 0;
  }

  /**
   * Keeps every id naming the same entry until the returned function is called (idempotent):
   * freed ids are held back instead of reused, and compaction waits. For work that walks ids
   * across turns of the event loop (snapshot cursors, async scans).
   */
  protected pinIds(): () => void {
    this.pins++;
    let pinned = true;
    return () => {
      if (!pinned) return;
      pinned = false;
      if (--this.pins > 0) return;
      while (this.heldHead >= 0) {
        const id = this.heldHead;
        this.heldHead = this.next[id]!;
        this.next[id] = this.freeHead;
        this.freeHead = id;
      }
      this.maybeCompact(); // one may have been skipped while pinned
    };
  }

  // ---- compaction ----------------------------------------------------------------------------

  /**
   * Shrinks the arrays once live entries fall below a quarter of the capacity (after keys
   * aged out or were removed), to twice the live entries. Growth is ×1.5 when full, so a
   * series hovering around one size never flips between the two.
   */
  protected maybeCompact(): void {
    if (this.pins > 0 || this.capacity < COMPACT_MIN_CAPACITY) return;
    if (this.entryCount * COMPACT_BELOW >= this.capacity) return;
    this.compact();
  }

  /**
   * Shrinks the arrays to twice the live entries now (the series also does it by itself, see
   * maybeCompact). Returns false, doing nothing, while ids are pinned (an open snapshot cursor).
   */
  compact(): boolean {
    if (this.pins > 0) return false;
    this.compactTo(Math.max(INITIAL_CAPACITY, this.entryCount * 2));
    return true;
  }

  /** Renumbers the live entries 0..entryCount-1 (in id order) into arrays of `capacity`. */
  private compactTo(capacity: number): void {
    const hw = this.highWater;
    const map = new Int32Array(hw).fill(-1);
    let n = 0;
    for (let id = 0; id < hw; id++) if (this.kind[id] !== KIND_FREE) map[id] = n++;
    const cap = Math.max(capacity, n);
    const remap = (x: number): number => (x < 0 ? -1 : map[x]!);
    const slots = this.slots.map(() => new this.countArray(cap));
    const kind = new Uint8Array(cap);
    const prev = new Int32Array(cap);
    const next = new Int32Array(cap);
    for (let id = 0; id < hw; id++) {
      const to = map[id]!;
      if (to < 0) continue;
      for (let s = 0; s < this.windows; s++) slots[s]![to] = this.slots[s]![id]!;
      const k = this.kind[id]!;
      kind[to] = k;
      if (isLeafKind(k)) {
        prev[to] = remap(this.prev[id]!);
        next[to] = remap(this.next[id]!);
      } else {
        prev[to] = this.prev[id]!; // aggregates keep their leaf count there
        next[to] = -1;
      }
    }
    this.slots = slots;
    this.kind = kind;
    this.prev = prev;
    this.next = next;
    this.probHead = remap(this.probHead);
    this.probTail = remap(this.probTail);
    this.protHead = remap(this.protHead);
    this.protTail = remap(this.protTail);
    this.freeHead = -1;
    this.heldHead = -1;
    this.highWater = n;
    this.capacity = cap;
    this.compactExtra(map, hw, cap);
    this.compacted(map, hw, cap);
  }

  /** After compactExtra: what keeps per-id state beside the subclass arrays follows (distinct sets). */
  protected compacted(_map: Int32Array, _oldHighWater: number, _capacity: number): void {}

  /**
   * Subclass arrays follow a compaction: `map[old id]` is the new id (-1 for a free one),
   * for old ids below `oldHighWater`; the new arrays hold `capacity` entries.
   */
  protected abstract compactExtra(map: Int32Array, oldHighWater: number, capacity: number): void;
}
