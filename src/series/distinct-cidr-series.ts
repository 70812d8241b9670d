/**
 * A distinct `cidr` / `cidr_ipv6` series: distinct values per address (or stored prefix) and
 * window, e.g. distinct recipients per client. A count at any mask is the number of distinct
 * values over every address in the prefix: at the kept levels (a distinct series keeps the masks
 * its policies count) one entry holds the union and the count is one lookup; at /0 the series'
 * own sets; at other masks the union of the entries of the next finer kept level (or the
 * addresses) inside the prefix.
 *
 * An address evicted by max_keys leaves its values in the sets of its prefixes (as the Redis
 * layout's prefix counts keep counting adds its full leaf hash refused) while the prefix holds
 * another address; remove_item rebuilds them from the addresses that remain.
 */
import { InvalidKeyError } from '../errors.js';
import { FAMILY_BITS, applyMask, type ClientAddress } from './address.js';
import { CidrSeries, type GroupAcc } from './cidr-series.js';
import type { DistinctJSON } from './distinct.js';
import { distinctSeries, valueRequired } from './distinct-series.js';
import { KIND_FREE } from './entry-table.js';

export class DistinctCidrSeries extends distinctSeries(CidrSeries) {
  private readonly chain: number[] = [];
  private readonly ids: number[] = [];

  override add(_key: string, _count = 1): boolean {
    throw valueRequired(this.name);
  }

  override addAddress(_addr: ClientAddress, _count = 1): boolean {
    throw valueRequired(this.name);
  }

  /**
   * Adds `value` to the set of an address (or, with store_prefix, a prefix at least that long)
   * in the current window. False when the key belongs to the other address family (ignored).
   */
  addValue(key: string, value: string): boolean {
    const mask = this.loadKey(key);
    if (mask < 0) return false;
    if (mask < this.leafBits) throw new InvalidKeyError(`series "${this.name}": add takes an address, not the prefix "${key}"`);
    this.sets.setValue(value);
    this.advance();
    this.addWords(this.scratch);
    return true;
  }

  /** addValue for an address parsed once by the caller. */
  addAddressValue(addr: ClientAddress, value: string): boolean {
    if (addr.family !== this.family) return false;
    this.sets.setValue(value);
    this.advance();
    this.scratch.set(addr.words);
    this.addWords(this.scratch);
    return true;
  }

  private addWords(words: Uint32Array): void {
    applyMask(words, this.family, this.leafBits);
    this.addToChain(this.chainOf(this.leafFor(words, 1)));
    this.noteChange();
  }

  /** A leaf and its aggregates, finest first. */
  private chainOf(leaf: number): number[] {
    const c = this.chain;
    c.length = 0;
    for (let id = leaf; id >= 0; id = this.parent[id]!) c.push(id);
    return c;
  }

  /** Distinct values over windows startv..endv for `ip` or `ip/mask`; 0 for a key of the other family. */
  override count(key: string, startv = 0, endv = startv): number {
    const last = this.checkRange(startv, endv);
    const mask = this.loadKey(key);
    if (mask < 0) return 0;
    this.advance();
    return this.distinctAt(this.scratch, mask, startv, last);
  }

  override countAddress(addr: ClientAddress, mask: number, startv = 0, endv = startv): number {
    const last = this.checkRange(startv, endv);
    if (addr.family !== this.family) return 0;
    this.advance();
    this.scratch.set(addr.words);
    return this.distinctAt(this.scratch, Math.min(Math.max(0, mask), FAMILY_BITS[this.family]), startv, last);
  }

  private distinctAt(words: Uint32Array, mask: number, startv: number, last: number): number {
    if (startv > last) return 0;
    const slots = this.rangeSlots(startv, last);
    if (mask === 0) return this.sets.totalCount(slots);
    const kept = this.keptEntry(words, mask);
    if (kept !== undefined) {
      if (kept < 0) return 0;
      return slots.length === 1 ? this.slots[slots[0]!]![kept]! : this.sets.count(kept, slots);
    }
    this.entriesUnder(words, mask, this.ids);
    return this.sets.countUnion(this.ids, slots);
  }

  /**
   * Removes `ip` (or every address inside `ip/mask`) from all windows, then rebuilds the sets of
   * the prefixes that held them (and the series' own) from the addresses that remain.
   */
  override removeItem(key: string): number {
    const mask = this.loadKey(key);
    if (mask < 0) return 0;
    const words = Uint32Array.from(this.scratch);
    const removed = super.removeItem(key);
    if (removed === 0) return 0;
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const lvl = this.levels[i]!;
      if (lvl >= mask) continue; // every address of such a prefix went with it
      const w = Uint32Array.from(words);
      applyMask(w, this.family, lvl);
      const agg = this.find(w, lvl);
      if (agg < 0) continue;
      this.entriesUnder(w, lvl, this.ids);
      this.sets.rebuild(agg, this.ids);
      this.recount(agg);
    }
    const top = this.levels[0] ?? this.leafBits;
    const coarsest: number[] = [];
    for (let id = 0; id < this.highWater; id++) if (this.kind[id] !== KIND_FREE && this.level[id] === top) coarsest.push(id);
    this.sets.rebuildTotals(coarsest);
    return removed;
  }

  /** The sets must be rebuilt too: the text path does that. */
  override removeAddress(addr: ClientAddress): number {
    return this.removeItem(addr.text);
  }

  /** An evicted or removed address leaves its values in the prefix's set, so its per-window sizes stand (removeItem rebuilds them). */
  protected override detachCounts(_agg: number, _leaf: number): void {}

  // ---- top ranks by distinct values ---------------------------------------------------------

  protected override totalWeight(startv: number, last: number): number {
    return this.sets.totalCount(this.rangeSlots(startv, last));
  }

  protected override entryWeight(id: number, startv: number, last: number): number {
    return this.sets.count(id, this.rangeSlots(startv, last));
  }

  protected override accumulate(acc: GroupAcc | undefined, id: number): GroupAcc {
    const ids = (acc as number[] | undefined) ?? [];
    ids.push(id);
    return ids;
  }

  protected override accumulated(acc: GroupAcc, startv: number, last: number): number {
    return this.sets.countUnion(acc as number[], this.rangeSlots(startv, last));
  }

  protected override restoreSet(v: number, set: DistinctJSON): number {
    this.scratch.set(this.restoreWords);
    applyMask(this.scratch, this.family, this.leafBits);
    return this.mergeChain(this.chainOf(this.leafFor(this.scratch, 1)), v, set);
  }
}
