/**
 * DistinctSketch: exact below the switch (against a Set), the error of the sketch forms, union
 * = sketch of the concatenation, merges across forms, JSON and Redis round trips.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SnapshotError } from '../../src/errors.js';
import { DistinctSketch, EXACT_MAX, SPARSE_MAX, hashValue } from '../../src/series/distinct.js';
import { HLL_STANDARD_ERROR } from '../../src/series/hll.js';
import { toBigInt } from '../../src/series/murmur64.js';

const sketchOf = (vals: Iterable<string>): DistinctSketch => {
  const s = new DistinctSketch();
  for (const v of vals) s.add(v);
  return s;
};
const gen = (n: number, tag: string): string[] => Array.from({ length: n }, (_, i) => `${tag}-${i}@example.org`);

describe('exact below the switch', () => {
  it(`counts any list of at most ${EXACT_MAX} distinct strings exactly, in any order, with duplicates`, () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ maxLength: 24 }), { minLength: 0, maxLength: EXACT_MAX }),
        fc.array(fc.nat(), { maxLength: 200 }),
        (distinct, picks) => {
          const order = [...distinct, ...picks.filter(() => distinct.length > 0).map((p) => distinct[p % distinct.length]!)];
          // shuffle deterministically by the picks
          for (let i = order.length - 1; i > 0; i--) {
            const j = (picks[i % Math.max(1, picks.length)] ?? 0) % (i + 1);
            [order[i], order[j]] = [order[j]!, order[i]!];
          }
          const s = new DistinctSketch();
          const model = new Set<string>();
          for (const v of order) {
            expect(s.add(v)).toBe(!model.has(v));
            model.add(v);
            expect(s.count()).toBe(model.size);
          }
          expect(s.exact).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('switches to the HLL on value 65; the count moves by no more than the sketch error (65..1,000 values)', () => {
    let worst = 0;
    for (let t = 0; t < 20; t++) {
      const s = new DistinctSketch();
      const vals = gen(1000, `switch${t}`);
      for (let i = 0; i < vals.length; i++) {
        s.add(vals[i]!);
        const n = i + 1;
        expect(s.exact).toBe(n <= EXACT_MAX);
        if (n <= EXACT_MAX) expect(s.count()).toBe(n);
        else {
          const err = Math.abs(s.count() - n);
          worst = Math.max(worst, err / Math.max(1, n * HLL_STANDARD_ERROR));
          expect(err).toBeLessThanOrEqual(Math.max(4, 3 * HLL_STANDARD_ERROR * n));
        }
      }
    }
    expect(worst).toBeLessThan(6); // in standard errors (0.81% of n); a step of 3 at n = 65 is 5.7
  });

  it('redisCount() is the HLL figure even while exact', () => {
    const s = sketchOf(gen(64, 'rc'));
    const viaRegisters = DistinctSketch.fromRedis(s.toRedis()).count();
    expect(s.redisCount()).toBe(viaRegisters);
    expect(Math.abs(s.redisCount() - 64)).toBeLessThanOrEqual(3);
  });
});

describe('error of the sketch', () => {
  it.each([1_000, 10_000, 100_000])('%i distinct values: within 3 standard errors (2.43%) and within 2%', (n) => {
    for (const tag of ['rcpt', 'net', 'user']) {
      const s = sketchOf(gen(n, tag));
      const rel = Math.abs(s.count() - n) / n;
      expect(rel).toBeLessThanOrEqual(3 * HLL_STANDARD_ERROR);
      expect(rel).toBeLessThanOrEqual(0.02);
    }
  });

  it('the root mean square error over 25 sets of 10,000 is about the standard error 0.81%', () => {
    let sq = 0;
    for (let t = 0; t < 25; t++) {
      const rel = (sketchOf(gen(10_000, `rms${t}`)).count() - 10_000) / 10_000;
      sq += rel * rel;
    }
    const rms = Math.sqrt(sq / 25);
    expect(rms).toBeLessThan(1.5 * HLL_STANDARD_ERROR);
  });

  it('duplicates change nothing once dense', () => {
    const vals = gen(20_000, 'dup');
    const s = sketchOf(vals);
    const c = s.count();
    for (const v of vals.slice(0, 1000)) expect(s.add(v)).toBe(false);
    expect(s.count()).toBe(c);
  });
});

describe('union', () => {
  it('the union of sketches is the sketch of the concatenation (count, registers, exactness)', () => {
    const pool = gen(400, 'u');
    fc.assert(
      fc.property(fc.array(fc.array(fc.nat({ max: 399 }), { maxLength: 150 }), { maxLength: 6 }), (lists) => {
        const parts = lists.map((l) => sketchOf(l.map((i) => pool[i]!)));
        const whole = sketchOf(lists.flat().map((i) => pool[i]!));
        const u = DistinctSketch.union(parts);
        expect(u.count()).toBe(whole.count());
        expect(DistinctSketch.unionCount(parts)).toBe(whole.count());
        expect(u.exact).toBe(whole.exact);
        expect(u.toRedis().equals(whole.toRedis())).toBe(true);
        // merge in the other order too
        const r = new DistinctSketch();
        for (const p of [...parts].reverse()) r.merge(p);
        expect(r.count()).toBe(whole.count());
      }),
      { numRuns: 200 },
    );
  });

  it('merges across every pair of forms (exact, sparse, dense) like the concatenation', () => {
    const forms: Array<[string, string[]]> = [
      ['exact', gen(40, 'f1')],
      ['sparse', gen(900, 'f2')],
      ['dense', gen(30_000, 'f3')],
      ['another dense', gen(20_000, 'f4')],
    ];
    for (const [, a] of forms) {
      for (const [, b] of forms) {
        const x = sketchOf(a);
        x.merge(sketchOf(b));
        const whole = sketchOf([...a, ...b]);
        expect(x.count()).toBe(whole.count());
        expect(DistinctSketch.unionCount([sketchOf(a), sketchOf(b)])).toBe(whole.count());
        expect(x.toRedis().equals(whole.toRedis())).toBe(true);
      }
    }
    const self = sketchOf(gen(500, 'self'));
    const c = self.count();
    self.merge(self);
    expect(self.count()).toBe(c);
  });

  it('two exact sets stay exact while their union has at most 64 values', () => {
    const a = sketchOf(gen(40, 'x'));
    const b = sketchOf([...gen(20, 'x'), ...gen(24, 'y')]);
    const u = DistinctSketch.union([a, b]);
    expect(u.exact).toBe(true);
    expect(u.count()).toBe(64);
    b.add('one more');
    expect(DistinctSketch.union([a, b]).exact).toBe(false);
  });
});

describe('forms and memory', () => {
  it('goes exact → sparse → dense and bytes() stays bounded', () => {
    const s = new DistinctSketch();
    const vals = gen(50_000, 'mem');
    let i = 0;
    for (; i < 8; i++) s.add(vals[i]!);
    expect(s.bytes()).toBeLessThanOrEqual(8 * 8);
    for (; i < EXACT_MAX; i++) s.add(vals[i]!);
    expect(s.bytes()).toBe(EXACT_MAX * 8);
    s.add(vals[i++]!);
    expect(s.bytes()).toBeLessThanOrEqual(EXACT_MAX * 8);
    for (; i < 50_000; i++) s.add(vals[i]!);
    expect(s.bytes()).toBeLessThanOrEqual(12_289 + 128);
    expect(s.bytes()).toBeGreaterThan(SPARSE_MAX * 4);
  });

  it('addHash takes a bigint or [hi, lo] and equals add()', () => {
    const a = new DistinctSketch();
    const b = new DistinctSketch();
    const c = new DistinctSketch();
    for (const v of gen(300, 'h')) {
      const h = hashValue(v);
      a.add(v);
      b.addHash(toBigInt(h));
      c.addHash([h.hi, h.lo]);
    }
    expect(b.toRedis().equals(a.toRedis())).toBe(true);
    expect(c.toRedis().equals(a.toRedis())).toBe(true);
  });
});

describe('serialization', () => {
  const sizes = [0, 1, 8, 64, 65, 500, 3_000, 25_000];

  it.each(sizes)('%i values: JSON round trip keeps the count, the form and the registers', (n) => {
    const s = sketchOf(gen(n, `j${n}`));
    const json = JSON.parse(JSON.stringify(s)) as unknown;
    const back = DistinctSketch.fromJSON(json);
    expect(back.count()).toBe(s.count());
    expect(back.exact).toBe(s.exact);
    expect(back.toRedis().equals(s.toRedis())).toBe(true);
    if (n <= 8) expect(JSON.stringify(s).length).toBeLessThanOrEqual(30 + Math.ceil((8 * n) / 3) * 4);
  });

  it.each(sizes)('%i values: Redis string round trip keeps the registers (and the count past the switch)', (n) => {
    const s = sketchOf(gen(n, `r${n}`));
    const back = DistinctSketch.fromRedis(s.toRedis());
    expect(back.count()).toBe(s.redisCount());
    if (n > EXACT_MAX) expect(back.count()).toBe(s.count());
    expect(back.toRedis().equals(s.toRedis())).toBe(true);
    // and the decoded sketch keeps counting like the original
    back.add('later');
    s.add('later');
    expect(back.redisCount()).toBe(s.redisCount());
  });

  it('refuses malformed JSON', () => {
    const bad: unknown[] = [
      null,
      'x',
      { v: 2, exact: '' },
      { v: 1 },
      { v: 1, exact: 'AAAA' }, // 3 bytes
      { v: 1, exact: '!!!!' },
      { v: 1, exact: Buffer.alloc(8 * 65).toString('base64') },
      { v: 1, hll: Buffer.from('HYLL').toString('base64') },
    ];
    for (const j of bad) expect(() => DistinctSketch.fromJSON(j)).toThrow(SnapshotError);
  });
});
