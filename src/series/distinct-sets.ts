/**
 * The sets of a distinct series: for every entry id of the series (leaves and kept aggregates)
 * × ring slot, the distinct values seen (a DistinctTable, indexed by the series' own ids), one
 * sketch per slot for the whole series (its /0), and the hash of the value being added.
 *
 * A set only grows: an entry above a leaf (an aggregate, the /0 sketch) holds every value of the
 * leaves beneath it, so an add that does not change a leaf's set cannot change theirs either.
 */
import { InvalidValueError } from '../errors.js';
import { DistinctSketch, hashValue, type DistinctJSON } from './distinct.js';
import { DistinctTable } from './distinct-table.js';
import type { Hash64 } from './murmur64.js';

/** Longest value a distinct series takes (what a key template may expand to). */
export const MAX_VALUE_LENGTH = 1024;

/** Checks a value for a distinct series: 1 to MAX_VALUE_LENGTH characters. */
export function checkValue(series: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_VALUE_LENGTH) {
    throw new InvalidValueError(`series "${series}": a value must be 1 to ${MAX_VALUE_LENGTH} characters`);
  }
}

export class DistinctSets {
  private table: DistinctTable;
  private totals: DistinctSketch[];
  /** The hash of the value being added (setValue): what PFADD hashes. */
  private readonly hash: Hash64 = { hi: 0, lo: 0 };
  private readonly one = [0];

  constructor(
    readonly windows: number,
    private readonly series: string,
  ) {
    this.table = new DistinctTable(windows);
    this.totals = Array.from({ length: windows }, () => new DistinctSketch());
  }

  /** Checks `value` and hashes it for the adds that follow. */
  setValue(value: string): void {
    checkValue(this.series, value);
    hashValue(value, this.hash);
  }

  /** Adds the current value to entry `id`'s set in `slot`: its new size there, or -1 when the set did not change. */
  add(id: number, slot: number): number {
    if (!this.table.addParts(id, slot, this.hash.hi, this.hash.lo)) return -1;
    return this.slotCount(id, slot);
  }

  /** Adds the current value to the whole series' set (its /0) in `slot`. */
  addTotal(slot: number): void {
    this.totals[slot]!.addParts(this.hash.hi, this.hash.lo);
  }

  /** Distinct values of entry `id` in one slot. */
  slotCount(id: number, slot: number): number {
    this.one[0] = slot;
    return this.table.count(id, this.one);
  }

  /** Distinct values of entry `id` over the slots (their union). */
  count(id: number, slots: readonly number[]): number {
    return this.table.count(id, slots);
  }

  /** Distinct values of several entries over the slots (a prefix = its entries). */
  countUnion(ids: readonly number[], slots: readonly number[]): number {
    return this.table.countUnion(ids, slots);
  }

  /** Distinct values of the whole series over the slots. */
  totalCount(slots: readonly number[]): number {
    return DistinctSketch.unionCount(slots.map((s) => this.totals[s]!));
  }

  /** The set of entry `id` in `slot` (JSON: snapshots, the series log); null when empty. */
  json(id: number, slot: number): DistinctJSON | null {
    if (this.slotCount(id, slot) === 0) return null;
    this.one[0] = slot;
    return this.table.sketch(id, this.one).toJSON();
  }

  /** Merges a set's values into the entries `ids` (a leaf and its aggregates) and the total, in `slot`. */
  merge(ids: readonly number[], slot: number, set: DistinctSketch): void {
    for (const id of ids) this.table.mergeInto(id, slot, set);
    this.totals[slot]!.merge(set);
  }

  /** Entry `to` becomes, in every slot, the union of the entries `from` (an aggregate after a removal). */
  rebuild(to: number, from: readonly number[]): void {
    this.table.remove(to);
    for (let s = 0; s < this.windows; s++) {
      this.one[0] = s;
      for (const f of from) this.table.mergeInto(to, s, this.table.sketch(f, this.one));
    }
  }

  /** The whole series' sets become the union of the entries `from` (its coarsest entries). */
  rebuildTotals(from: readonly number[]): void {
    this.totals = Array.from({ length: this.windows }, (_, s) => {
      this.one[0] = s;
      return DistinctSketch.union(from.map((f) => this.table.sketch(f, this.one)));
    });
  }

  /** Empties a slot (its window aged out) for every entry and the total. */
  clearSlot(slot: number): void {
    this.table.clearSlot(slot);
    this.totals[slot] = new DistinctSketch();
  }

  /** Forgets entry `id` in every slot (its id was freed). */
  remove(id: number): void {
    this.table.remove(id);
  }

  /** Follows the series' compaction (see DistinctTable.remap). */
  remap(map: Int32Array, oldCount: number, capacity: number): void {
    this.table.remap(map, oldCount, capacity);
  }

  /** Bytes held by the sets (payloads; see DistinctTable.bytes). */
  bytes(): number {
    let b = this.table.bytes();
    for (const t of this.totals) b += t.bytes();
    return b;
  }
}
