/**
 * What makes a series distinct (`distinct: true`), for either key type: distinct-cidr-series.ts
 * and distinct-string-series.ts apply it to CidrSeries and StringSeries.
 *
 * An add carries a value instead of a count; a count over windows startv..endv is the number
 * of distinct values the key saw in them (the size of the union of its windows' sets), exact
 * up to 64 values, then Redis's HyperLogLog estimate (distinct.ts). The series keeps the sets
 * in DistinctSets, indexed by its own entry ids, and keeps the size of each entry's set per
 * window where an ordinary series keeps its counts: per-window counts (`show ip`, the series
 * log), eviction, the LRU and the sweep of empty keys work unchanged.
 */
import { InvalidValueError } from '../errors.js';
import { DistinctSketch, type DistinctJSON } from './distinct.js';
import { DistinctSets } from './distinct-sets.js';
import type { SnapshotEntry } from './types.js';
import type { SnapshotHead, WindowedSeries } from './windowed.js';

/** A series class the mixin can extend (CidrSeries, StringSeries). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the TypeScript mixin pattern needs any[]
type SeriesClass = abstract new (...args: any[]) => WindowedSeries;

/** The error of an add without a value on a distinct series. */
export function valueRequired(series: string): InvalidValueError {
  return new InvalidValueError(`series "${series}" counts distinct values: an add needs a value, not a count`);
}

/** The error of a value given to a series that counts events. */
export function notDistinct(series: string): InvalidValueError {
  return new InvalidValueError(`series "${series}" counts events, not distinct values: an add takes a count, not a value`);
}

/** The distinct behaviour shared by both key types: sets, their upkeep, snapshots and closed windows. */
export function distinctSeries<B extends SeriesClass>(Base: B) {
  abstract class Distinct extends Base {
    readonly distinct = true as const;
    protected readonly sets = new DistinctSets(this.windows, this.name);
    /** Ring slots of the window range being counted (rangeSlots). */
    private readonly range: number[] = [];

    /** The ring slots of windows startv..last (reused array). */
    protected rangeSlots(startv: number, last: number): number[] {
      const r = this.range;
      r.length = 0;
      for (let v = startv; v <= last; v++) r.push(this.slotOf(this.current - v));
      return r;
    }

    /**
     * Adds the current value (sets.setValue) in the current window to the entries `chain` (a
     * leaf, then its aggregates) and to the total, keeping each entry's per-window size.
     */
    protected addToChain(chain: ArrayLike<number>): void {
      const s = this.slotOf(this.current);
      for (let i = 0; i < chain.length; i++) {
        const id = chain[i]!;
        const n = this.sets.add(id, s);
        if (n < 0) return; // the set held the value already: so do the sets above it
        this.slots[s]![id] = n;
      }
      this.sets.addTotal(s);
    }

    /** Restores a set into the entries `chain` at window v; returns the leaf (chain[0]). */
    protected mergeChain(chain: readonly number[], v: number, set: DistinctJSON): number {
      const s = this.slotOf(this.current - v);
      this.sets.merge(chain, s, DistinctSketch.fromJSON(set));
      for (const id of chain) this.slots[s]![id] = this.sets.slotCount(id, s);
      return chain[0]!;
    }

    /** Recomputes an entry's per-window sizes (after its sets were rebuilt). */
    protected recount(id: number): void {
      for (let s = 0; s < this.windows; s++) this.slots[s]![id] = this.sets.slotCount(id, s);
    }

    protected override freeId(id: number): void {
      this.sets.remove(id);
      super.freeId(id);
    }

    protected override slotCleared(slot: number): void {
      this.sets.clearSlot(slot);
    }

    protected override compacted(map: Int32Array, oldHighWater: number, capacity: number): void {
      this.sets.remap(map, oldHighWater, capacity);
    }

    override memoryBytes(): number {
      return super.memoryBytes() + this.sets.bytes();
    }

    protected override describeSnapshot(snap: SnapshotHead): void {
      super.describeSnapshot(snap);
      snap.version = 2;
    }

    protected override snapshotEntry(id: number, counts: number[], frame: number): SnapshotEntry {
      const sets = counts.map((c, v) => {
        const slot = this.frameSlot(v, frame);
        return c === 0 || slot < 0 ? null : this.sets.json(id, slot);
      });
      return [this.keyText(id), counts, sets];
    }

    protected override closedSets(ids: readonly number[], slot: number): DistinctJSON[] {
      return ids.map((id) => this.sets.json(id, slot) ?? { v: 1, exact: '' });
    }
  }
  return Distinct;
}
