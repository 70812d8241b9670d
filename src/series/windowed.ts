/**
 * The storage every series type shares: entries in typed arrays (structure of arrays),
 * one Int32Array per ring slot, a segmented least-recently-touched list over leaf entries
 * and lazy, epoch-aligned window rotation. Keys and indexing belong to the subclasses.
 *
 * Eviction (max_keys) is a segmented LRU: a new key enters the *probation* segment; a key
 * added to again (or whose first add counts 2 or more) moves to the *protected* segment.
 * Room is made by evicting the probation tail, and the protected tail only when probation is
 * empty. Protected holds at most 90% of max_keys (its tail is demoted to probation's head),
 * so new keys always have room to prove themselves. One-shot keys (a flood of distinct
 * senders, addresses) then only push out each other, never the keys a policy is counting.
 * The segment lives in the `kind` byte: no extra bytes per key.
 */
import type { Clock } from './clock.js';
import { SeriesDefinitionError, SnapshotError, WindowRangeError } from '../errors.js';
import { DEFAULT_MAX_KEYS, type SeriesDefinition, type SeriesOptions, type SeriesSnapshot, type SeriesType } from './types.js';

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

export interface ClosedWindow {
  series: string;
  /** Absolute window number: floor(epoch seconds / interval). */
  window: number;
  startMs: number;
  endMs: number;
  /** Every key with a non-zero count in that window: probation keys, then protected ones, each most recently touched first. */
  entries: Array<[string, number]>;
}
export type WindowCloseListener = (closed: ClosedWindow) => void;
export const MAX_COUNT = 2 ** 31 - 1;
export const MIN_COUNT = -(2 ** 31);

/** Window counts saturate instead of wrapping. */
export function clampCount(v: number): number {
  return v > MAX_COUNT ? MAX_COUNT : v < MIN_COUNT ? MIN_COUNT : v;
}

export abstract class WindowedSeries {
  readonly name: string;
  readonly type: SeriesType;
  readonly interval: number;
  readonly windows: number;
  readonly options: Readonly<SeriesOptions>;
  readonly maxKeys: number;
  /** Leaves the protected segment may hold: floor(max_keys × 0.9). */
  readonly protectedCap: number;
  protected readonly clock: Clock;
  protected readonly intervalMs: number;

  protected capacity = 0;
  /**
   * slots[s][id]: count of entry id in ring slot s (absolute window w lives in slot w % windows).
   * Counts are 32-bit signed integers, saturating at ±2^31 (see clampCount).
   */
  protected slots: Int32Array[] = [];
  protected kind = new Uint8Array(0);
  protected prev = new Int32Array(0);
  protected next = new Int32Array(0);
  /** Next id never handed out; ids below it are either live or on the free list. */
  protected highWater = 0;
  protected freeHead = -1;
  // Two LRU lists over leaves, linked through prev/next: head = most recently touched.
  private probHead = -1;
  private probTail = -1;
  private protHead = -1;
  private protTail = -1;
  private protCount = 0;
  protected leafCount = 0;
  protected entryCount = 0;
  /** Restore places each key itself once its counts are in (see restore). */
  private restoring = false;
  /** Bumped by every add, removal and restore: persistence skips a series that did not change. */
  private changeCounter = 0;
  /** Keys evicted by max_keys since the series was built. */
  private evictedCounter = 0;
  /** Pins held (open snapshot cursors, async scans): while any is, freed ids are not reused and nothing is compacted. */
  private pins = 0;
  /** Ids freed while pinned, linked through `next`; back on the free list once the last pin is released. */
  private heldHead = -1;

  /** Sum of every leaf, per slot: the /0 count. */
  protected totals: Float64Array;
  /** Absolute window number the ring is positioned at. */
  protected current: number;

  constructor(def: SeriesDefinition, clock: Clock) {
    if (!Number.isFinite(def.interval) || def.interval <= 0) {
      throw new SeriesDefinitionError(`series "${def.name}": interval must be a positive number of seconds`);
    }
    if (!Number.isInteger(def.windows) || def.windows < 1 || def.windows > 1024) {
      throw new SeriesDefinitionError(`series "${def.name}": windows must be an integer from 1 to 1024`);
    }
    const maxKeys = def.options?.max_keys ?? DEFAULT_MAX_KEYS;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new SeriesDefinitionError(`series "${def.name}": max_keys must be a positive integer`);
    }
    this.name = def.name;
    this.type = def.type;
    this.interval = def.interval;
    this.windows = def.windows;
    this.options = Object.freeze({ ...def.options });
    this.maxKeys = maxKeys;
    this.protectedCap = Math.floor(maxKeys * PROTECTED_SHARE);
    this.clock = clock;
    this.intervalMs = def.interval * 1000;
    this.totals = new Float64Array(def.windows);
    this.current = this.windowAt(clock.now());
  }

  /** Subclasses call this at the end of their constructor, once their own fields exist. */
  protected initStorage(): void {
    this.resize(INITIAL_CAPACITY);
  }

  /** Absolute window number for a time in ms: windows are aligned to the Unix epoch. */
  windowAt(ms: number): number {
    return Math.floor(ms / this.intervalMs);
  }

  /** The absolute window number of window 0 now (after rotating). */
  currentWindow(): number {
    this.advance();
    return this.current;
  }

  /** Milliseconds until the current window closes. */
  msUntilRollover(): number {
    const now = this.clock.now();
    return (this.windowAt(now) + 1) * this.intervalMs - now;
  }

  /** Number of keys tracked (addresses, stored prefixes or strings). */
  size(): number {
    this.advance();
    return this.leafCount;
  }

  /** Keys in the protected segment (added to more than once). */
  protectedSize(): number {
    this.advance();
    return this.protCount;
  }

  /**
   * A number that changes whenever the counts change other than by ageing: every add, removal
   * and restore. Equal values mean an equal snapshot (up to windows that aged out since).
   */
  changes(): number {
    return this.changeCounter;
  }

  /** Keys evicted to stay within max_keys since the series was built. */
  evicted(): number {
    return this.evictedCounter;
  }

  /** Subclasses call this for every add and removal. */
  protected noteChange(): void {
    this.changeCounter++;
  }
  /** Bytes held by this series' arrays (what the benchmark divides by keys). */
  memoryBytes(): number {
    return this.capacity * (4 * this.windows + 1 + 4 + 4) + this.totals.byteLength + this.extraBytes();
  }

  protected abstract extraBytes(): number;
  /** Subclass arrays follow the base arrays on resize. */
  protected abstract resizeExtra(capacity: number): void;
  /** Removes a leaf's key from the index and detaches it from aggregates; the base frees the id. */
  protected abstract detachLeaf(id: number): void;
  /** Drops every entry and index (a full reset when the whole coverage elapsed). */
  protected abstract clearIndex(): void;

  protected resize(capacity: number): void {
    const grow = <T extends Int32Array | Uint8Array>(a: T, ctor: new (n: number) => T): T => {
      const b = new ctor(capacity);
      b.set(a.subarray(0, Math.min(a.length, capacity)) as never);
      return b;
    };
    this.slots = Array.from({ length: this.windows }, (_, s) => grow(this.slots[s] ?? new Int32Array(0), Int32Array));
    this.kind = grow(this.kind, Uint8Array);
    this.prev = grow(this.prev, Int32Array);
    this.next = grow(this.next, Int32Array);
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
  private lruPush(id: number, prot: boolean): void {
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

  private lruUnlink(id: number): void {
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
  private promote(id: number): void {
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

  /** Removes a leaf entirely: index, aggregates, totals, LRU, id. */
  protected removeLeaf(id: number): void {
    for (let s = 0; s < this.windows; s++) this.totals[s] = this.totals[s]! - this.slots[s]![id]!;
    this.detachLeaf(id);
    this.freeId(id);
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

  /**
   * Moves the ring to the clock's current window: clears the slots of windows that closed
   * out of coverage and drops leaves whose every window is now zero. A clock that moved
   * backwards leaves the ring where it is.
   */
  protected advance(): void {
    const w = this.windowAt(this.clock.now());
    if (w <= this.current) return;
    if (this.closeListener) this.emitClosed();
    const elapsed = w - this.current;
    this.current = w;
    if (elapsed >= this.windows) {
      this.resetAll();
      return;
    }
    for (let k = 1; k <= elapsed; k++) {
      const s = this.slotOf(w - elapsed + k);
      this.slots[s]!.fill(0);
      this.totals[s] = 0;
    }
    this.sweepEmpty();
    this.maybeCompact();
  }

  private closeListener: WindowCloseListener | undefined;

  /**
   * Calls `listener` once for every window that closes (stops being window 0), with the final
   * count of every key in it, before the window can age out. Windows close lazily, on the next
   * operation or currentWindow() call after the boundary; call currentWindow() on a timer to
   * close them promptly.
   */
  onWindowClosed(listener: WindowCloseListener | undefined): void {
    this.closeListener = listener;
  }

  private emitClosed(): void {
    const slot = this.slotOf(this.current);
    const arr = this.slots[slot]!;
    const entries: Array<[string, number]> = [];
    for (const head of [this.probHead, this.protHead]) {
      for (let id = head; id >= 0; id = this.next[id]!) {
        const c = arr[id]!;
        if (c !== 0) entries.push([this.keyText(id), c]);
      }
    }
    const start = this.current * this.intervalMs;
    try {
      this.closeListener!({ series: this.name, window: this.current, startMs: start, endMs: start + this.intervalMs, entries });
    } catch {
      // a failing listener must not break counting; the listener reports its own errors
    }
  }

  /** The text of a leaf's key (address, stored prefix or string). */
  protected abstract keyText(id: number): string;

  private resetAll(): void {
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
    this.totals.fill(0);
    this.clearIndex();
    this.resize(INITIAL_CAPACITY);
  }

  private sweepEmpty(): void {
    const W = this.windows;
    for (let id = 0; id < this.highWater; id++) {
      if (!isLeafKind(this.kind[id])) continue;
      let zero = true;
      for (let s = 0; s < W; s++) {
        if (this.slots[s]![id] !== 0) {
          zero = false;
          break;
        }
      }
      if (zero) this.removeLeaf(id);
    }
  }

  protected slotOf(window: number): number {
    const s = window % this.windows;
    return s < 0 ? s + this.windows : s;
  }

  /** Validates and clamps a window range; returns the last window to read (≤ windows-1). */
  protected checkRange(startv: number, endv: number): number {
    if (!Number.isInteger(startv) || !Number.isInteger(endv) || startv < 0 || endv < startv) {
      throw new WindowRangeError(
        `series "${this.name}": window range ${startv}..${endv} is invalid (need integers 0 ≤ start ≤ end)`,
      );
    }
    return Math.min(endv, this.windows - 1);
  }

  protected sumEntry(id: number, startv: number, last: number): number {
    let sum = 0;
    for (let v = startv; v <= last; v++) sum += this.slots[this.slotOf(this.current - v)]![id]!;
    return sum;
  }

  protected sumTotals(startv: number, last: number): number {
    let sum = 0;
    for (let v = startv; v <= last; v++) sum += this.totals[this.slotOf(this.current - v)]!;
    return sum;
  }

  /** Adds `count` to entry `id` for window v (0 = current; v < windows). */
  protected bump(id: number, v: number, count: number): void {
    const s = this.slotOf(this.current - v);
    const arr = this.slots[s]!;
    arr[id] = clampCount(arr[id]! + count);
  }

  protected checkCount(count: number): void {
    if (!Number.isSafeInteger(count) || count > MAX_COUNT || count < MIN_COUNT) {
      throw new WindowRangeError(`series "${this.name}": count must be an integer from ${MIN_COUNT} to ${MAX_COUNT}`);
    }
  }

  /**
   * Every tracked key with its per-window counts: the probation segment least recently touched
   * first, then the protected segment likewise (restore replays them in that order).
   */
  snapshot(): SeriesSnapshot {
    const cursor = this.openSnapshot();
    try {
      return { ...cursor.head, entries: cursor.next(Infinity) };
    } finally {
      cursor.close();
    }
  }

  /**
   * A snapshot copied a slice at a time, so a large series can be saved without holding the
   * event loop. The order of the keys is fixed when the cursor opens (one pass over the LRU
   * lists); each key's counts are read when its slice is copied. The result is one consistent
   * state: every key appears at most once with its counts as of its slice, all relative to
   * `head.window`, the window 0 of the moment the cursor opened. If windows rotate between
   * slices, later keys are read shifted back into that frame (adds made in the newer windows
   * are not in this snapshot; the next one has them). While a cursor is open, freed ids are not
   * reused and the arrays are not compacted, so a captured id never names another key. Keys
   * added after the cursor opened are not in it. Close every cursor (try/finally).
   */
  openSnapshot(): SnapshotCursor {
    this.advance();
    const order = new Int32Array(this.leafCount);
    let n = 0;
    for (const tail of [this.probTail, this.protTail]) {
      for (let id = tail; id >= 0; id = this.prev[id]!) order[n++] = id;
    }
    const head: SnapshotHead = {
      version: 1,
      name: this.name,
      type: this.type,
      interval: this.interval,
      windows: this.windows,
      window: this.current,
    };
    this.describeSnapshot(head);
    const frame = this.current;
    const release = this.pinIds();
    let pos = 0;
    let open = true;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const series = this;
    return {
      head,
      next(max: number): Array<[string, number[]]> {
        const out: Array<[string, number[]]> = [];
        if (open) series.advance(); // counts as of now: windows that aged out since are not copied
        while (open && pos < n && out.length < max) {
          const id = order[pos++]!;
          if (id >= series.highWater || !isLeafKind(series.kind[id])) continue; // removed since the cursor opened
          const counts = series.framedWindows(id, frame);
          if (counts) out.push([series.keyText(id), counts]);
        }
        return out;
      },
      close(): void {
        open = false;
        release();
      },
    };
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

  /**
   * A leaf's counts relative to absolute window `frame` (≤ current): index v is window frame - v.
   * Null when every one is 0 (nothing to save).
   */
  private framedWindows(id: number, frame: number): number[] | null {
    const d = this.current - frame;
    if (d >= this.windows) return null;
    const out = new Array<number>(this.windows);
    let any = false;
    for (let v = 0; v < this.windows; v++) {
      const u = v + d;
      const c = u < this.windows ? this.slots[this.slotOf(this.current - u)]![id]! : 0;
      out[v] = c;
      if (c !== 0) any = true;
    }
    return any ? out : null;
  }

  /** Subclasses add what a snapshot needs beyond the common fields (store_prefix). */
  protected describeSnapshot(_snap: SnapshotHead): void {}

  /**
   * Adds a snapshot's counts to this series, shifted to the current window: windows that
   * closed since the snapshot move back, those past coverage are dropped. Returns the keys
   * restored. A key whose restored counts sum to 2 or more goes to the protected segment, the
   * others to probation, each at the head in file order (so the last saved is the most recent).
   */
  restore(snap: SeriesSnapshot): number {
    checkSnapshot(this, snap);
    this.advance();
    const shift = this.current - snap.window;
    let restored = 0;
    this.restoring = true;
    try {
      for (const [key, counts] of snap.entries) {
        if (!Array.isArray(counts) || !this.selectRestoreKey(key)) continue;
        let id = -1;
        let sum = 0;
        for (let v = 0; v < counts.length; v++) {
          const c = counts[v]!;
          const nv = v + shift;
          if (c === 0 || nv < 0 || nv >= this.windows || !Number.isSafeInteger(c)) continue;
          id = this.restoreCount(nv, clampCount(c));
          sum += c;
        }
        if (id < 0 || !isLeafKind(this.kind[id])) continue;
        this.lruUnlink(id);
        this.lruPush(id, false);
        if (sum >= 2) this.promote(id);
        restored++;
      }
    } finally {
      this.restoring = false;
    }
    if (restored > 0) this.noteChange();
    return restored;
  }

  /** Validates a snapshot key and makes it the target of restoreCount; false skips it. */
  protected abstract selectRestoreKey(key: string): boolean;
  /** Adds `count` in window v to the key chosen by selectRestoreKey; returns its leaf id. */
  protected abstract restoreCount(v: number, count: number): number;

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
    const slots = this.slots.map(() => new Int32Array(cap));
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
  }

  /**
   * Subclass arrays follow a compaction: `map[old id]` is the new id (-1 for a free one),
   * for old ids below `oldHighWater`; the new arrays hold `capacity` entries.
   */
  protected abstract compactExtra(map: Int32Array, oldHighWater: number, capacity: number): void;
}

/** The fields of a snapshot other than its entries. */
export type SnapshotHead = Omit<SeriesSnapshot, 'entries'>;

/** A snapshot being copied a slice at a time (see WindowedSeries.openSnapshot). */
export interface SnapshotCursor {
  /** Everything but the entries; `window` is window 0 when the cursor opened. */
  readonly head: SnapshotHead;
  /** Copies up to `max` more entries (keys whose counts are all 0 are skipped); [] when done. */
  next(max: number): Array<[string, number[]]>;
  /** Releases the series (held ids, compaction). Idempotent. */
  close(): void;
}

export function checkSnapshot(series: { name: string; type: string; interval: number }, snap: SeriesSnapshot): void {
  if (!snap || snap.version !== 1 || !Array.isArray(snap.entries) || !Number.isInteger(snap.window)) {
    throw new SnapshotError(`series "${series.name}": snapshot has an unknown shape`);
  }
  if (snap.type !== series.type || snap.interval !== series.interval) {
    throw new SnapshotError(
      `series "${series.name}": snapshot is ${snap.type}/${snap.interval}s, series is ${series.type}/${series.interval}s`,
    );
  }
}
