/**
 * A distinct `string` series: distinct values per string key and window, e.g. distinct client
 * networks per AUTH user, distinct sender domains per HELO name. total() is the number of
 * distinct values over every key.
 */
import type { DistinctJSON } from './distinct.js';
import { distinctSeries, valueRequired } from './distinct-series.js';
import { StringSeries } from './string-series.js';
import { TopK } from './topk.js';
import type { TopEntry, TopOptions } from './types.js';

export class DistinctStringSeries extends distinctSeries(StringSeries) {
  private readonly one = [0];

  override add(_key: string, _count = 1): boolean {
    throw valueRequired(this.name);
  }

  /** Adds `value` to the set of `key` in the current window. */
  addValue(key: string, value: string): boolean {
    this.checkKey(key);
    this.sets.setValue(value);
    this.advance();
    this.one[0] = this.leafFor(key, 1);
    this.addToChain(this.one);
    this.noteChange();
    return true;
  }

  /** Distinct values of `key` over windows startv..endv. */
  override count(key: string, startv = 0, endv = startv): number {
    const last = this.checkRange(startv, endv);
    this.checkKey(key);
    this.advance();
    const id = this.index.get(key);
    if (id === undefined || startv > last) return 0;
    const slots = this.rangeSlots(startv, last);
    return slots.length === 1 ? this.slots[slots[0]!]![id]! : this.sets.count(id, slots);
  }

  /** Distinct values over every key. */
  override total(startv = 0, endv = startv): number {
    const last = this.checkRange(startv, endv);
    this.advance();
    return startv > last ? 0 : this.sets.totalCount(this.rangeSlots(startv, last));
  }

  /** Removes `key` from all windows; the series' own sets are rebuilt from the keys that remain. */
  override removeItem(key: string): number {
    const removed = super.removeItem(key);
    if (removed > 0) this.sets.rebuildTotals([...this.index.values()]);
    return removed;
  }

  /** The keys with the most distinct values over windows startv..endv. */
  override top(opts: TopOptions = {}): TopEntry[] {
    const startv = opts.startv ?? 0;
    const last = this.checkRange(startv, opts.endv ?? this.windows - 1);
    this.advance();
    const heap = new TopK(opts.limit ?? 10);
    const slots = this.rangeSlots(startv, last);
    for (const [k, id] of this.index) heap.offer(k, this.sets.count(id, slots));
    return heap.result();
  }

  protected override restoreSet(v: number, set: DistinctJSON): number {
    this.one[0] = this.leafFor(this.restoreKey, 1);
    return this.mergeChain(this.one, v, set);
  }
}
