/**
 * DistinctTable against a model of plain Sets per key and slot: random adds, counts over slot
 * sets and key sets, slot clears (window rotation), removals and compactions. The model's rule
 * is the sketch's: a union is exact when every slot in it is still small (≤ 64 values since its
 * last clear) and the union holds ≤ 64 values; otherwise it is the HLL count of the union.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DistinctSketch, EXACT_MAX } from '../../src/series/distinct.js';
import { DistinctTable } from '../../src/series/distinct-table.js';

class Model {
  sets = new Map<string, Set<string>>();
  big = new Set<string>();
  constructor(readonly windows: number) {}
  private k(id: number, slot: number): string {
    return `${id}/${slot}`;
  }
  add(id: number, slot: number, v: string): boolean {
    const k = this.k(id, slot);
    const s = this.sets.get(k) ?? new Set<string>();
    this.sets.set(k, s);
    if (s.has(v)) return false;
    s.add(v);
    if (s.size > EXACT_MAX) this.big.add(k);
    return true;
  }
  clearSlot(slot: number): void {
    for (const k of [...this.sets.keys()]) if (k.endsWith(`/${slot}`)) this.sets.delete(k);
    for (const k of [...this.big]) if (k.endsWith(`/${slot}`)) this.big.delete(k);
  }
  remove(id: number): void {
    for (const k of [...this.sets.keys()]) if (k.startsWith(`${id}/`)) this.sets.delete(k);
    for (const k of [...this.big]) if (k.startsWith(`${id}/`)) this.big.delete(k);
  }
  count(ids: number[], slots: number[]): number {
    const union = new Set<string>();
    let anyBig = false;
    for (const id of ids) {
      for (const slot of slots) {
        for (const v of this.sets.get(this.k(id, slot)) ?? []) union.add(v);
        if (this.big.has(this.k(id, slot))) anyBig = true;
      }
    }
    if (!anyBig && union.size <= EXACT_MAX) return union.size;
    const s = new DistinctSketch();
    for (const v of union) s.add(v);
    return s.redisCount();
  }
}

type Op =
  | { op: 'add'; id: number; slot: number; v: number; times: number }
  | { op: 'count'; ids: number[]; slots: number[] }
  | { op: 'clear'; slot: number }
  | { op: 'remove'; id: number }
  | { op: 'compact' };

describe('DistinctTable against a model', () => {
  it('adds, counts, clears, removals and compactions agree with Sets per key and slot', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4, 40),
        fc.array(
          fc.oneof(
            { weight: 8, arbitrary: fc.record({ op: fc.constant('add' as const), id: fc.nat({ max: 3 }), slot: fc.nat({ max: 39 }), v: fc.nat({ max: 200 }), times: fc.integer({ min: 1, max: 80 }) }) },
            { weight: 3, arbitrary: fc.record({ op: fc.constant('count' as const), ids: fc.uniqueArray(fc.nat({ max: 3 }), { minLength: 1, maxLength: 4 }), slots: fc.uniqueArray(fc.nat({ max: 39 }), { minLength: 1, maxLength: 6 }) }) },
            { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const), slot: fc.nat({ max: 39 }) }) },
            { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), id: fc.nat({ max: 3 }) }) },
            { weight: 1, arbitrary: fc.constant({ op: 'compact' as const }) },
          ),
          { minLength: 5, maxLength: 60, size: 'max' },
        ),
        (windows, ops: Op[]) => {
          const t = new DistinctTable(windows, 2);
          const m = new Model(windows);
          for (const o of ops) {
            if (o.op === 'add') {
              const slot = o.slot % windows;
              // a burst of consecutive values so slots cross 64
              for (let j = 0; j < o.times; j++) {
                const v = `v${(o.v + j * 7) % 300}`;
                const changed = t.add(o.id, slot, v);
                const isNew = m.add(o.id, slot, v);
                // while small: true exactly when new; once a sketch: true only if a register rose
                if (!isNew) expect(changed).toBe(false);
                else if (!m.big.has(`${o.id}/${slot}`)) expect(changed).toBe(true);
              }
            } else if (o.op === 'count') {
              const slots = [...new Set(o.slots.map((s) => s % windows))];
              expect(t.countUnion(o.ids, slots)).toBe(m.count(o.ids, slots));
              expect(t.count(o.ids[0]!, slots)).toBe(m.count([o.ids[0]!], slots));
              expect(t.sketch(o.ids[0]!, slots).count()).toBe(m.count([o.ids[0]!], slots));
            } else if (o.op === 'clear') {
              t.clearSlot(o.slot % windows);
              m.clearSlot(o.slot % windows);
            } else if (o.op === 'remove') {
              t.remove(o.id);
              m.remove(o.id);
            } else t.compact();
          }
          for (let id = 0; id <= 3; id++) {
            const all = Array.from({ length: windows }, (_, s) => s);
            expect(t.count(id, all)).toBe(m.count([id], all));
            expect(t.isEmpty(id)).toBe(m.count([id], all) === 0);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('DistinctTable', () => {
  it('add() reports a change exactly when the value is new to that slot (while small)', () => {
    const t = new DistinctTable(4);
    expect(t.add(0, 0, 'a')).toBe(true);
    expect(t.add(0, 0, 'a')).toBe(false);
    expect(t.add(0, 1, 'a')).toBe(true); // same value, another window
    expect(t.add(1, 0, 'a')).toBe(true); // another key
    expect(t.count(0, [0])).toBe(1);
    expect(t.count(0, [0, 1])).toBe(1);
    expect(t.countUnion([0, 1], [0, 1, 2, 3])).toBe(1);
  });

  it('a slot past 64 values counts as its sketch; its neighbours stay exact', () => {
    const t = new DistinctTable(4);
    for (let i = 0; i < 5000; i++) t.add(7, 2, `big-${i}`);
    for (let i = 0; i < 10; i++) t.add(7, 1, `small-${i}`);
    const ref = new DistinctSketch();
    for (let i = 0; i < 5000; i++) ref.add(`big-${i}`);
    expect(t.count(7, [2])).toBe(ref.count());
    expect(t.count(7, [1])).toBe(10);
    for (let i = 0; i < 10; i++) ref.add(`small-${i}`);
    expect(t.count(7, [1, 2])).toBe(ref.count());
    expect(t.bytes()).toBeGreaterThan(12_288);
    t.clearSlot(2);
    expect(t.count(7, [1, 2])).toBe(10);
    expect(t.bytes()).toBeLessThan(6_000); // the slot's 12 KB sketch is gone (an empty table: 4.9 KB)
  });

  it('mergeInto adds a sketch (exact or not) to a slot', () => {
    const t = new DistinctTable(2);
    const small = new DistinctSketch();
    for (let i = 0; i < 30; i++) small.add(`m${i}`);
    t.mergeInto(3, 0, small);
    t.mergeInto(3, 0, small);
    expect(t.count(3, [0])).toBe(30);
    t.mergeInto(3, 0, DistinctSketch.union([small, ...[0, 1].map(() => small)])); // still exact
    const big = new DistinctSketch();
    for (let i = 0; i < 1000; i++) big.add(`m${i}`);
    t.mergeInto(3, 1, big);
    expect(t.count(3, [1])).toBe(big.count());
    expect(t.count(3, [0, 1])).toBe(big.count()); // m0..m29 are inside big
    t.mergeInto(3, 0, big);
    expect(t.count(3, [0])).toBe(big.count());
  });

  it('checks slots and ids', () => {
    const t = new DistinctTable(4);
    expect(() => t.add(0, 4, 'x')).toThrow(RangeError);
    expect(() => t.add(-1, 0, 'x')).toThrow(RangeError);
    expect(() => t.count(0, [1.5])).toThrow(RangeError);
    expect(() => new DistinctTable(0)).toThrow(RangeError);
    t.add(1000, 3, 'far id'); // ids grow the table
    expect(t.count(1000, [3])).toBe(1);
  });

  it('holds a small key (8 values over 4 windows) in under 200 bytes, freed space comes back', () => {
    const keys = 10_000;
    const t = new DistinctTable(4, keys);
    for (let id = 0; id < keys; id++) for (let j = 0; j < 8; j++) t.add(id, j % 4, `k${id}-v${j}`);
    expect(t.bytes() / keys).toBeLessThan(200);
    for (let id = 0; id < keys; id++) expect(t.count(id, [0, 1, 2, 3])).toBe(8);
    const full = t.bytes();
    for (let s = 0; s < 4; s++) t.clearSlot(s);
    expect(t.bytes()).toBeLessThan(full / 2);
    for (let id = 0; id < keys; id++) expect(t.isEmpty(id)).toBe(true);
  });
});
