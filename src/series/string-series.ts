/** `string` series: exact-match keys (HELO name, sender domain, AUTH user, …). */
import type { Clock } from './clock.js';
import { InvalidKeyError } from '../errors.js';
import { KIND_LEAF } from './entry-table.js';
import { WindowedSeries } from './windowed.js';
import { TopK } from './topk.js';
import type { SeriesDefinition, TopEntry, TopOptions } from './types.js';

export const MAX_STRING_KEY_LENGTH = 1024;

export class StringSeries extends WindowedSeries {
  protected readonly index = new Map<string, number>();
  private keyOf: (string | undefined)[] = [];
  /** Characters held in keys (memoryBytes without walking the index). */
  private keyChars = 0;

  constructor(def: SeriesDefinition, clock: Clock) {
    super(def, clock);
    this.initStorage();
  }

  protected override resizeExtra(capacity: number): void {
    this.keyOf.length = capacity;
  }

  protected override extraBytes(): number {
    // Map entry and string storage are estimated: V8 does not expose them.
    return this.index.size * 40 + this.keyChars * 2;
  }

  protected override clearIndex(): void {
    this.index.clear();
    this.keyOf = [];
    this.keyChars = 0;
  }

  protected override compactExtra(map: Int32Array, oldHighWater: number, capacity: number): void {
    const keyOf = new Array<string | undefined>(capacity);
    for (let id = 0; id < oldHighWater; id++) {
      const to = map[id]!;
      if (to >= 0) keyOf[to] = this.keyOf[id];
    }
    this.keyOf = keyOf;
    for (const [k, id] of this.index) this.index.set(k, map[id]!);
  }

  protected override keyText(id: number): string {
    return this.keyOf[id]!;
  }

  protected override detachLeaf(id: number): void {
    const k = this.keyOf[id];
    if (k !== undefined) {
      this.index.delete(k);
      this.keyChars -= k.length;
    }
    this.keyOf[id] = undefined;
  }

  protected checkKey(key: string): void {
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_STRING_KEY_LENGTH) {
      throw new InvalidKeyError(`series "${this.name}": a string key must be 1 to ${MAX_STRING_KEY_LENGTH} characters`);
    }
  }

  add(key: string, count = 1): boolean {
    this.checkCount(count);
    this.checkKey(key);
    this.advance();
    this.addAt(key, 0, count);
    this.noteChange();
    return true;
  }

  /** Adds `count` in window v to `key`; returns its leaf id. */
  private addAt(key: string, v: number, count: number): number {
    const id = this.leafFor(key, count);
    this.bump(id, v, count);
    const s = this.slotOf(this.current - v);
    this.totals[s] = this.totals[s]! + count;
    return id;
  }

  /** Finds or creates the leaf of `key` for an add of `count` (which decides its LRU segment). */
  protected leafFor(key: string, count: number): number {
    let id = this.index.get(key);
    if (id === undefined) {
      this.makeRoom();
      id = this.allocId(KIND_LEAF);
      this.index.set(key, id);
      this.keyOf[id] = key;
      this.keyChars += key.length;
      this.admitLeaf(id, count);
    } else {
      this.touchLeaf(id);
    }
    return id;
  }

  count(key: string, startv = 0, endv = startv): number {
    const last = this.checkRange(startv, endv);
    this.checkKey(key);
    this.advance();
    const id = this.index.get(key);
    return id === undefined ? 0 : this.sumEntry(id, startv, last);
  }

  windowCounts(key: string): number[] {
    const out: number[] = [];
    for (let v = 0; v < this.windows; v++) out.push(this.count(key, v, v));
    return out;
  }

  /** Sum of every key: what a cidr series calls /0. */
  total(startv = 0, endv = startv): number {
    const last = this.checkRange(startv, endv);
    this.advance();
    return this.sumTotals(startv, last);
  }

  removeItem(key: string): number {
    this.checkKey(key);
    this.advance();
    const id = this.index.get(key);
    if (id === undefined) return 0;
    this.removeLeaf(id);
    this.noteChange();
    return 1;
  }

  top(opts: TopOptions = {}): TopEntry[] {
    const startv = opts.startv ?? 0;
    const last = this.checkRange(startv, opts.endv ?? this.windows - 1);
    this.advance();
    const heap = new TopK(opts.limit ?? 10);
    for (const [k, id] of this.index) heap.offer(k, this.sumEntry(id, startv, last));
    return heap.result();
  }

  protected restoreKey = '';

  protected override selectRestoreKey(key: string): boolean {
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_STRING_KEY_LENGTH) return false;
    this.restoreKey = key;
    return true;
  }

  protected override restoreCount(v: number, count: number): number {
    return this.addAt(this.restoreKey, v, count);
  }
}
