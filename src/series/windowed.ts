/**
 * What every series type shares beyond its entry table (entry-table.ts): lazy, epoch-aligned
 * window rotation over the ring slots, window ranges and sums, the windows that close, and
 * snapshots (copied a slice at a time) and their restore. Keys and indexing belong to the
 * subclasses.
 */
import type { Clock } from './clock.js';
import { SnapshotError } from '../errors.js';
import { checkAddCount, checkWindowRange } from './counts.js';
import { EntryTable, isLeafKind } from './entry-table.js';
import type { DistinctJSON } from './distinct.js';
import type { SeriesDefinition, SeriesOptions, SeriesSnapshot, SeriesType, SnapshotEntry } from './types.js';
import { type ClosedWindow, type SnapshotCursor, type SnapshotHead, type WindowCloseListener, checkDefinition, checkSnapshot } from './windowed-shapes.js';

export type { ClosedWindow, SnapshotCursor, SnapshotHead, WindowCloseListener };

export abstract class WindowedSeries extends EntryTable {
  readonly name: string;
  readonly type: SeriesType;
  readonly interval: number;
  readonly options: Readonly<SeriesOptions>;
  protected readonly clock: Clock;
  protected readonly intervalMs: number;
  /** Bumped by every add, removal and restore: persistence skips a series that did not change. */
  private changeCounter = 0;

  /** Sum of every leaf, per slot: the /0 count. */
  protected totals: Float64Array;
  /** Absolute window number the ring is positioned at. */
  protected current: number;

  constructor(def: SeriesDefinition, clock: Clock) {
    super(def.windows, checkDefinition(def), def.options?.wide === true);
    this.name = def.name;
    this.type = def.type;
    this.interval = def.interval;
    this.options = Object.freeze({ ...def.options });
    this.clock = clock;
    this.intervalMs = def.interval * 1000;
    this.totals = new Float64Array(def.windows);
    this.current = this.windowAt(clock.now());
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

  /** Subclasses call this for every add and removal. */
  protected noteChange(): void {
    this.changeCounter++;
  }
  /** Bytes held by this series' arrays (what the benchmark divides by keys). */
  memoryBytes(): number {
    return this.capacity * (this.countBytes * this.windows + 1 + 4 + 4) + this.totals.byteLength + this.extraBytes();
  }

  protected abstract extraBytes(): number;
  /** Removes a leaf's key from the index and detaches it from aggregates; the base frees the id. */
  protected abstract detachLeaf(id: number): void;
  /** Drops every entry and index (a full reset when the whole coverage elapsed). */
  protected abstract clearIndex(): void;

  /** Removes a leaf entirely: index, aggregates, totals, LRU, id. */
  protected override removeLeaf(id: number): void {
    for (let s = 0; s < this.windows; s++) this.totals[s] = this.totals[s]! - this.slots[s]![id]!;
    this.detachLeaf(id);
    this.freeId(id);
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
      this.slotCleared(s);
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
    const ids: number[] = [];
    for (const head of [this.probHead, this.protHead]) {
      for (let id = head; id >= 0; id = this.next[id]!) {
        const c = arr[id]!;
        if (c === 0) continue;
        entries.push([this.keyText(id), c]);
        ids.push(id);
      }
    }
    const start = this.current * this.intervalMs;
    const closed: ClosedWindow = { series: this.name, window: this.current, startMs: start, endMs: start + this.intervalMs, entries };
    const sets = this.closedSets(ids, slot);
    if (sets) closed.sets = sets;
    try {
      this.closeListener!(closed);
    } catch {
      // a failing listener must not break counting; the listener reports its own errors
    }
  }

  /** The text of a leaf's key (address, stored prefix or string). */
  protected abstract keyText(id: number): string;

  /** A ring slot was emptied (its window aged out of coverage): distinct series clear their sets. */
  protected slotCleared(_slot: number): void {}

  /** Distinct series: the sets of the leaves `ids` in a closing slot (ClosedWindow.sets). */
  protected closedSets(_ids: readonly number[], _slot: number): DistinctJSON[] | undefined {
    return undefined;
  }

  private resetAll(): void {
    this.clearEntries();
    this.totals.fill(0);
    this.clearIndex();
    this.initStorage();
    for (let s = 0; s < this.windows; s++) this.slotCleared(s);
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
    return checkWindowRange(this, startv, endv);
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
    arr[id] = this.clamp(arr[id]! + count);
  }

  protected checkCount(count: number): void {
    checkAddCount(this.name, count);
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
      next(max: number): SnapshotEntry[] {
        const out: SnapshotEntry[] = [];
        if (open) series.advance(); // counts as of now: windows that aged out since are not copied
        while (open && pos < n && out.length < max) {
          const id = order[pos++]!;
          if (id >= series.highWater || !isLeafKind(series.kind[id])) continue; // removed since the cursor opened
          const counts = series.framedWindows(id, frame);
          if (counts) out.push(series.snapshotEntry(id, counts, frame));
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
   * A leaf's counts relative to absolute window `frame` (≤ current): index v is window frame - v.
   * Null when every one is 0 (nothing to save).
   */
  private framedWindows(id: number, frame: number): number[] | null {
    if (this.current - frame >= this.windows) return null;
    const out = new Array<number>(this.windows);
    let any = false;
    for (let v = 0; v < this.windows; v++) {
      const slot = this.frameSlot(v, frame);
      const c = slot >= 0 ? this.slots[slot]![id]! : 0;
      out[v] = c;
      if (c !== 0) any = true;
    }
    return any ? out : null;
  }

  /** The ring slot now holding window v of the frame whose window 0 was absolute window `frame`; -1 when it aged out. */
  protected frameSlot(v: number, frame: number): number {
    const u = v + this.current - frame;
    return u < this.windows ? this.slotOf(this.current - u) : -1;
  }

  /** One key of a snapshot: its text and counts (distinct series add their sets). */
  protected snapshotEntry(id: number, counts: number[], _frame: number): SnapshotEntry {
    return [this.keyText(id), counts];
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
      for (const entry of snap.entries) {
        const [key, counts] = entry;
        const sets = entry.length > 2 ? entry[2] : undefined;
        if (!Array.isArray(counts) || !this.selectRestoreKey(key)) continue;
        let id = -1;
        let sum = 0;
        for (let v = 0; v < counts.length; v++) {
          const c = counts[v]!;
          const nv = v + shift;
          if (c === 0 || nv < 0 || nv >= this.windows || !Number.isSafeInteger(c)) continue;
          const set = sets?.[v];
          if (sets === undefined) id = this.restoreCount(nv, this.clamp(c));
          else if (set) id = this.restoreSet(nv, set);
          else continue;
          sum += c;
        }
        if (id < 0 || !isLeafKind(this.kind[id])) continue;
        this.placeRestored(id, sum);
        restored++;
      }
    } finally {
      this.restoring = false;
    }
    if (restored > 0) this.noteChange();
    return restored;
  }

  /** A restored leaf goes to the head of probation, or of protected when its counts sum to 2 or more. */
  protected placeRestored(id: number, sum: number): void {
    this.lruUnlink(id);
    this.lruPush(id, false);
    if (sum >= 2) this.promote(id);
  }

  /** Validates a snapshot key and makes it the target of restoreCount; false skips it. */
  protected abstract selectRestoreKey(key: string): boolean;
  /** Adds `count` in window v to the key chosen by selectRestoreKey; returns its leaf id. */
  protected abstract restoreCount(v: number, count: number): number;

  /** Distinct series: adds a set's values in window v to the key chosen by selectRestoreKey; returns its leaf id. */
  protected restoreSet(_v: number, _set: DistinctJSON): number {
    throw new SnapshotError(`series "${this.name}": a snapshot with sets is for a distinct series`);
  }
}
