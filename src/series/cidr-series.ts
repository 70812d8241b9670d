/**
 * IPv4 (`cidr`) and IPv6 (`cidr_ipv6`) series. Leaves are addresses (or stored prefixes,
 * with store_prefix); aggregate entries keep running sums for a few prefix lengths
 * (`levels`) so a count at /24 or /64 is one lookup and /0 is the running total. Counts
 * at other masks are exact too: they enumerate at most 256 children of the next finer
 * level, or scan it. The entries and their hash index: cidr-index.ts.
 */
import { InvalidKeyError } from '../errors.js';
import { FAMILY_BITS, type ClientAddress, applyMask, formatPrefix, parsePrefix, prefixContains } from './address.js';
import { CidrIndex } from './cidr-index.js';
import { KIND_FREE, isLeafKind } from './entry-table.js';
import type { SnapshotHead } from './windowed.js';
import { TopK } from './topk.js';
import type { TopEntry, TopOptions } from './types.js';
/** Beyond this many bits between a query mask and the next kept level, a count scans instead of enumerating. */
const MAX_ENUMERATE_BITS = 8;
/** Scans yield to the event loop every 2^16 entries (topAsync). */
const SCAN_CHUNK_MASK = 0xffff;

/** A group of top at a mask that is not kept: a running sum, or (distinct series) the entry ids to unite. */
export type GroupAcc = number | number[];

export type KeyResult = { ok: true; words: Uint32Array; mask: number } | { ok: false; reason: 'family' };

export class CidrSeries extends CidrIndex {
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

  /** Parses `key` into this.scratch; returns its mask, or -1 for the other family. */
  protected loadKey(key: string): number {
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
    for (let id = leaf; id >= 0; id = this.parent[id]!) arr[id] = this.clamp(arr[id]! + count);
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
    const kept = this.keptEntry(words, mask);
    if (kept !== undefined) return kept < 0 ? 0 : this.sumEntry(kept, startv, last);
    const ids = this.idScratch;
    this.entriesUnder(words, mask, ids);
    let sum = 0;
    for (const id of ids) sum += this.sumEntry(id, startv, last);
    return sum;
  }

  private readonly idScratch: number[] = [];

  /**
   * The entry that holds the count at `mask` itself — the leaf (mask ≥ the stored length) or a
   * kept aggregate — masking `words` to it: its id, -1 when there is none, undefined when the mask
   * is not kept (then entriesUnder).
   */
  protected keptEntry(words: Uint32Array, mask: number): number | undefined {
    if (mask < this.leafBits && this.levelSet[mask] !== 1) return undefined;
    const lvl = mask >= this.leafBits ? this.leafBits : mask;
    applyMask(words, this.family, lvl);
    return this.find(words, lvl);
  }

  /** The next kept level finer than `mask` (or the stored length): where entriesUnder looks. */
  protected finerLevel(mask: number): number {
    for (const l of this.levels) if (l > mask) return l;
    return this.leafBits;
  }

  /**
   * Fills `out` with the entries at the next finer kept level (or the leaves) inside the prefix
   * `words`/`mask` (a mask that is not kept, > 0): their counts together are the prefix's.
   */
  protected entriesUnder(words: Uint32Array, mask: number, out: number[]): void {
    out.length = 0;
    applyMask(words, this.family, mask);
    // Nothing under the enclosing kept level means nothing under this prefix either.
    let coarser = 0;
    for (const l of this.levels) if (l < mask) coarser = l;
    if (coarser > 0) {
      const w2 = this.scratch2;
      w2.set(words);
      applyMask(w2, this.family, coarser);
      if (this.find(w2, coarser) < 0) return;
    }
    const finer = this.finerLevel(mask);
    const gap = finer - mask;
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
        if (id >= 0) out.push(id);
      }
      return;
    }
    for (let id = 0; id < this.highWater; id++) {
      if (this.kind[id] === KIND_FREE || this.level[id] !== finer) continue;
      if (prefixContains(words, mask, this.keys.subarray(id * this.nwords, id * this.nwords + this.nwords), finer, this.nwords)) out.push(id);
    }
  }

  /** Removes `ip` (or every address inside `ip/mask`) from all windows; returns keys removed. */
  removeItem(key: string): number {
    const mask = this.loadKey(key);
    if (mask < 0) return 0;
    this.advance();
    const words = this.scratch;
    if (mask >= this.leafBits) return this.removeLeafOf(words);
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

  /** `removeItem` of an address parsed once by the caller (no text to parse); 0 for the other family. */
  removeAddress(addr: ClientAddress): number {
    if (addr.family !== this.family) return 0;
    this.advance();
    this.scratch.set(addr.words);
    return this.removeLeafOf(this.scratch);
  }

  /** Removes the leaf holding `words` (masked here to the leaf length) from all windows; 1 if there was one. */
  private removeLeafOf(words: Uint32Array): number {
    applyMask(words, this.family, this.leafBits);
    const id = this.find(words, this.leafBits);
    if (id < 0) return 0;
    this.removeLeaf(id);
    this.noteChange();
    return 1;
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
      heap.offer(formatPrefix(this.family, zero, 0), this.totalWeight(startv, last));
      return heap.result();
    }
    const nw = this.nwords;
    if (mask === this.leafBits || this.levelSet[mask] === 1) {
      for (let id = 0; id < this.highWater; id++) {
        if (this.kind[id] === KIND_FREE || this.level[id] !== mask) continue;
        const c = this.entryWeight(id, startv, last);
        if (heap.wouldAccept(c)) heap.offer(formatPrefix(this.family, this.keys.subarray(id * nw, id * nw + nw), mask), c);
      }
      return heap.result();
    }
    const finer = this.finerLevel(mask);
    // Group by the masked key as a number (IPv4) or a compact word string (IPv6); only the
    // groups that make the top are formatted. The scan yields (topAsync): ids are pinned so a
    // compaction meanwhile cannot move entries behind it.
    const groups = new Map<number | string, GroupAcc>();
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
        groups.set(k, this.accumulate(groups.get(k), id, startv, last));
      }
      for (const [k, acc] of groups) {
        const c = this.accumulated(acc, startv, last);
        if (!heap.wouldAccept(c)) continue;
        if (typeof k === 'number') w[0] = k;
        else k.split(',').forEach((x, i) => (w[i] = Number(x)));
        heap.offer(formatPrefix(this.family, w, mask), c);
      }
    } finally {
      release();
    }
    return heap.result();
  }

  // ---- what top ranks by (a distinct series ranks by distinct values) ----------------------

  /** The /0 figure over windows startv..last. */
  protected totalWeight(startv: number, last: number): number {
    return this.sumTotals(startv, last);
  }

  /** One entry's figure (a leaf or a kept aggregate). */
  protected entryWeight(id: number, startv: number, last: number): number {
    return this.sumEntry(id, startv, last);
  }

  /** Adds entry `id` to a group of top at a mask that is not kept: a running sum here. */
  protected accumulate(acc: GroupAcc | undefined, id: number, startv: number, last: number): GroupAcc {
    return ((acc as number | undefined) ?? 0) + this.sumEntry(id, startv, last);
  }

  /** A group's figure. */
  protected accumulated(acc: GroupAcc, _startv: number, _last: number): number {
    return acc as number;
  }

  protected override describeSnapshot(snap: SnapshotHead): void {
    if (this.leafBits !== FAMILY_BITS[this.family]) snap.store_prefix = this.leafBits;
  }

  protected readonly restoreWords = new Uint32Array(4);

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
