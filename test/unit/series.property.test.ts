/**
 * The series against a naive model: a list of timestamped events, summed by brute force.
 * fast-check drives random sequences of add / count / remove_item / top / clock moves.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ManualClock } from '../../src/series/clock.js';
import { defineSeries, type CidrSeries } from '../../src/series/index.js';
import { parsePrefix, prefixContains, formatPrefix, type Family } from '../../src/series/address.js';

interface Event {
  window: number;
  words: Uint32Array;
  count: number;
}

class Model {
  events: Event[] = [];
  constructor(
    readonly family: Family,
    readonly interval: number,
    readonly windows: number,
    readonly storeBits: number,
  ) {}
  private nw(): number {
    return this.family === 4 ? 1 : 4;
  }
  add(now: number, key: string, count: number): void {
    const p = parsePrefix(key)!;
    const words = Uint32Array.from(p.words);
    // truncate to the stored prefix
    const t = parsePrefix(`${formatPrefix(this.family, words, this.family === 4 ? 32 : 128)}/${this.storeBits}`)!;
    this.events.push({ window: Math.floor(now / (this.interval * 1000)), words: t.words, count });
  }
  count(now: number, key: string, startv: number, endv: number): number {
    const p = parsePrefix(key)!;
    const cw = Math.floor(now / (this.interval * 1000));
    const mask = Math.min(p.mask, this.storeBits);
    const q = parsePrefix(`${formatPrefix(this.family, p.words, this.family === 4 ? 32 : 128)}/${mask}`)!;
    let sum = 0;
    for (const e of this.events) {
      const v = cw - e.window;
      if (v < startv || v > endv || v >= this.windows) continue;
      if (prefixContains(q.words, mask, e.words, this.storeBits, this.nw())) sum += e.count;
    }
    return sum;
  }
  remove(key: string): void {
    const p = parsePrefix(key)!;
    const mask = Math.min(p.mask, this.storeBits);
    const q = parsePrefix(`${formatPrefix(this.family, p.words, this.family === 4 ? 32 : 128)}/${mask}`)!;
    if (p.mask < this.storeBits) {
      this.events = this.events.filter((e) => !prefixContains(q.words, mask, e.words, this.storeBits, this.nw()));
    } else {
      this.events = this.events.filter((e) => !prefixContains(q.words, this.storeBits, e.words, this.storeBits, this.nw()));
    }
  }
}

const v4addr = fc
  .tuple(fc.constantFrom(10, 192, 203), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 5 }))
  .map(([a, b, c, d]) => `${a}.${b}.${c * 64}.${d * 37}`);
const v6addr = fc
  .tuple(fc.constantFrom('2001:db8', '2001:db9', 'fd00:1'), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }))
  .map(([p, b, c, d]) => `${p}:${b * 0x100}:${c}::${d * 0x101}`);

type Op =
  | { op: 'add'; key: string; count: number }
  | { op: 'count'; key: string; mask: number; startv: number; endv: number }
  | { op: 'remove'; key: string; mask: number }
  | { op: 'tick'; ms: number };

function ops(addr: fc.Arbitrary<string>, masks: number[], negative: boolean): fc.Arbitrary<Op[]> {
  return fc.array(
    fc.oneof(
      { weight: 5, arbitrary: fc.record({ op: fc.constant('add' as const), key: addr, count: negative ? fc.integer({ min: -3, max: 5 }) : fc.integer({ min: 1, max: 5 }) }) },
      {
        weight: 4,
        arbitrary: fc
          .record({ op: fc.constant('count' as const), key: addr, mask: fc.constantFrom(...masks), startv: fc.integer({ min: 0, max: 5 }), len: fc.integer({ min: 0, max: 5 }) })
          .map(({ op, key, mask, startv, len }) => ({ op, key, mask, startv, endv: startv + len })),
      },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), key: addr, mask: fc.constantFrom(...masks) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max: 400_000 })) }) },
    ),
    { maxLength: 80 },
  );
}

function run(family: Family, storeBits: number, list: Op[]): void {
  const clock = new ManualClock(1_700_000_000_000 + 12_345);
  const interval = 60;
  const windows = 4;
  const s = defineSeries(
    { name: 'p', type: family === 4 ? 'cidr' : 'cidr_ipv6', interval, windows, options: storeBits < 128 && family === 6 ? { store_prefix: storeBits } : {} },
    clock,
  ) as CidrSeries;
  const m = new Model(family, interval, windows, storeBits);
  for (const o of list) {
    if (o.op === 'add') {
      s.add(o.key, o.count);
      m.add(clock.now(), o.key, o.count);
    } else if (o.op === 'tick') {
      clock.advance(o.ms);
    } else if (o.op === 'remove') {
      const key = `${o.key}/${o.mask}`;
      s.removeItem(key);
      m.remove(key);
    } else {
      const key = `${o.key}/${o.mask}`;
      expect(s.count(key, o.startv, o.endv), `${key} ${o.startv}..${o.endv}`).toBe(m.count(clock.now(), key, o.startv, o.endv));
    }
  }
  // a final sweep at every mask checked
  const zero = family === 4 ? '0.0.0.0/0' : '::/0';
  expect(s.count(zero, 0, 3)).toBe(m.count(clock.now(), zero, 0, 3));
}

describe('series vs naive event-list model', () => {
  it('IPv4 at masks on and between the kept levels', () => {
    fc.assert(
      fc.property(ops(v4addr, [0, 1, 7, 8, 12, 16, 20, 23, 24, 25, 28, 31, 32], true), (list) => run(4, 32, list)),
      { numRuns: 300 },
    );
  });

  it('IPv6 full addresses', () => {
    fc.assert(
      fc.property(ops(v6addr, [0, 16, 32, 40, 48, 56, 60, 64, 100, 127, 128], true), (list) => run(6, 128, list)),
      { numRuns: 200 },
    );
  });

  it('IPv6 with store_prefix 64', () => {
    fc.assert(
      fc.property(ops(v6addr, [0, 32, 48, 56, 63, 64, 80, 128], true), (list) => run(6, 64, list)),
      { numRuns: 200 },
    );
  });

  it('max_keys evicts exactly the least recently touched live key', () => {
    fc.assert(
      fc.property(ops(v4addr, [32, 24, 16, 0], false), fc.integer({ min: 1, max: 6 }), (list, maxKeys) => {
        const clock = new ManualClock(1_700_000_000_000);
        const s = defineSeries({ name: 'e', type: 'cidr', interval: 60, windows: 4, options: { max_keys: maxKeys } }, clock) as CidrSeries;
        const m = new Model(4, 60, 4, 32);
        const touched = new Map<string, number>(); // key -> last touch sequence
        let seq = 0;
        const live = (now: number): string[] =>
          [...touched.keys()].filter((k) => m.events.some((e) => formatPrefix(4, e.words, 32) === k && Math.floor(now / 60_000) - e.window < 4));
        for (const o of list) {
          if (o.op === 'add') {
            const key = formatPrefix(4, parsePrefix(o.key)!.words, 32);
            const now = clock.now();
            const alive = live(now);
            if (!alive.includes(key) && alive.length >= maxKeys) {
              const oldest = alive.sort((a, b) => touched.get(a)! - touched.get(b)!)[0]!;
              m.remove(oldest);
              touched.delete(oldest);
            }
            touched.set(key, ++seq);
            s.add(o.key, o.count);
            m.add(now, o.key, o.count);
          } else if (o.op === 'tick') {
            clock.advance(o.ms);
          } else if (o.op === 'remove') {
            s.removeItem(`${o.key}/${o.mask}`);
            m.remove(`${o.key}/${o.mask}`);
          } else {
            const key = `${o.key}/${o.mask}`;
            expect(s.count(key, o.startv, o.endv)).toBe(m.count(clock.now(), key, o.startv, o.endv));
          }
          expect(s.size()).toBeLessThanOrEqual(maxKeys);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('top agrees with the model at every mask', () => {
    fc.assert(
      fc.property(ops(v4addr, [32], true), fc.constantFrom(0, 8, 12, 16, 20, 24, 28, 32), (list, mask) => {
        const clock = new ManualClock(1_700_000_000_000);
        const s = defineSeries({ name: 't', type: 'cidr', interval: 60, windows: 4 }, clock) as CidrSeries;
        const m = new Model(4, 60, 4, 32);
        for (const o of list) {
          if (o.op === 'add') {
            s.add(o.key, o.count);
            m.add(clock.now(), o.key, o.count);
          } else if (o.op === 'tick') clock.advance(o.ms);
        }
        const expected = new Map<string, number>();
        for (const e of m.events) {
          const k = formatPrefix(4, parsePrefix(`${formatPrefix(4, e.words, 32)}/${mask}`)!.words, mask);
          expected.set(k, m.count(clock.now(), mask === 32 ? k : k, 0, 3));
        }
        const want = [...expected.entries()]
          .filter(([, c]) => c > 0)
          .map(([key, count]) => ({ key, count }))
          .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1))
          .slice(0, 5);
        expect(s.top({ mask, limit: 5 })).toEqual(want);
      }),
      { numRuns: 200 },
    );
  });
});
