/**
 * Distinct series against an exact model: a Set of values per stored key and absolute window.
 * fast-check drives random adds (from value pools small enough to stay exact and large enough
 * to pass 64), clock moves, remove_item of addresses and prefixes, compaction and snapshot
 * round trips; every count at every mask and window range is checked: exact while the true
 * union holds at most 64 values, within 5% (six standard errors) above.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, type DistinctCidrSeries, type DistinctStringSeries } from '../../../src/series/index.js';
import { formatPrefix, parseClientAddress, parsePrefix, prefixContains, type Family } from '../../../src/series/address.js';
import { EXACT_MAX } from '../../../src/series/distinct.js';

const INTERVAL = 60;
const WINDOWS = 4;
const T0 = 1_800_000_000_000;

/** Stored key → absolute window → values. */
class SetModel {
  readonly data = new Map<string, Map<number, Set<string>>>();

  add(key: string, window: number, value: string): void {
    let wins = this.data.get(key);
    if (!wins) this.data.set(key, (wins = new Map()));
    let set = wins.get(window);
    if (!set) wins.set(window, (set = new Set()));
    set.add(value);
  }

  /** The union over the stored keys `match` accepts, windows cur-endv..cur-startv. */
  union(match: (key: string) => boolean, cur: number, startv: number, endv: number): number {
    const u = new Set<string>();
    for (const [key, wins] of this.data) {
      if (!match(key)) continue;
      for (const [w, set] of wins) {
        const v = cur - w;
        if (v >= startv && v <= endv && v < WINDOWS) for (const x of set) u.add(x);
      }
    }
    return u.size;
  }

  remove(match: (key: string) => boolean): void {
    for (const key of [...this.data.keys()]) if (match(key)) this.data.delete(key);
  }
}

/** Exact at most EXACT_MAX values, else within 5% (the standard error is 0.81%). */
function expectClose(got: number, want: number, what: string): void {
  if (want <= EXACT_MAX) expect(got, what).toBe(want);
  else expect(Math.abs(got - want) / want, `${what}: ${got} for ${want}`).toBeLessThanOrEqual(0.05);
}

type Op =
  | { op: 'add'; key: number; from: number; n: number }
  | { op: 'tick'; windows: number }
  | { op: 'remove'; key: number; prefix: boolean }
  | { op: 'compact' }
  | { op: 'roundtrip' };

function opsFor(keys: number): fc.Arbitrary<Op[]> {
  return fc.array(
    fc.oneof(
      // n values from a window into one pool: overlapping between keys and windows, up to ~150 per key
      { weight: 6, arbitrary: fc.record({ op: fc.constant('add' as const), key: fc.nat(keys - 1), from: fc.nat(120), n: fc.integer({ min: 1, max: 40 }) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('tick' as const), windows: fc.integer({ min: 0, max: 2 }) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), key: fc.nat(keys - 1), prefix: fc.boolean() }) },
      { weight: 1, arbitrary: fc.constant({ op: 'compact' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'roundtrip' as const }) },
    ),
    { minLength: 1, maxLength: 40 },
  );
}

const value = (i: number): string => `rcpt${i}@example.net`;

describe('distinct cidr series vs a Set model', () => {
  for (const family of [4, 6] as const) {
    const addrs =
      family === 4
        ? ['192.0.2.1', '192.0.2.77', '192.0.3.5', '198.51.100.9', '198.51.100.200']
        : ['2001:db8:0:1::5', '2001:db8:0:1::9', '2001:db8:0:2::1', '2001:db8:1::1', 'fd00::1'];
    const storeBits = family === 4 ? 32 : 64;
    const masks = family === 4 ? [32, 24, 23, 16, 0] : [64, 56, 48, 33, 0];
    const levels = family === 4 ? [24] : [48];

    it(`IPv${family}: counts at every mask and window range, window aging, remove_item, compaction, snapshots`, () => {
      fc.assert(
        fc.property(opsFor(addrs.length), (ops) => {
          const clock = new ManualClock(T0);
          const def = { name: 'd', type: family === 4 ? ('cidr' as const) : ('cidr_ipv6' as const), interval: INTERVAL, windows: WINDOWS, options: { distinct: true, levels, ...(family === 6 ? { store_prefix: 64 } : {}) } };
          let s = defineSeries(def, clock) as DistinctCidrSeries;
          const model = new SetModel();
          const stored = (a: string): string => {
            const p = parsePrefix(a)!;
            return `${formatPrefix(family as Family, p.words, storeBits)}`;
          };
          const inside = (prefix: string) => {
            const q = parsePrefix(prefix)!;
            return (key: string) => {
              const p = parsePrefix(key)!;
              return prefixContains(q.words, Math.min(q.mask, storeBits), p.words, storeBits, family === 4 ? 1 : 4);
            };
          };
          for (const o of ops) {
            const cur = Math.floor(clock.now() / (INTERVAL * 1000));
            if (o.op === 'add') {
              for (let i = o.from; i < o.from + o.n; i++) {
                s.addValue(addrs[o.key]!, value(i));
                model.add(stored(addrs[o.key]!), cur, value(i));
              }
            } else if (o.op === 'tick') clock.advanceSeconds(o.windows * INTERVAL);
            else if (o.op === 'remove') {
              const key = o.prefix ? `${addrs[o.key]}/${masks[1]}` : addrs[o.key]!;
              if (o.prefix) s.removeItem(key);
              else s.removeAddress(parseClientAddress(key)!);
              model.remove(inside(key));
            } else if (o.op === 'compact') s.compact();
            else {
              const t = defineSeries(def, clock) as DistinctCidrSeries;
              t.restore(JSON.parse(JSON.stringify(s.snapshot())));
              s = t;
            }
            const now = Math.floor(clock.now() / (INTERVAL * 1000));
            for (const a of addrs) {
              for (const m of masks) {
                const key = m === 0 ? (family === 4 ? '0.0.0.0/0' : '::/0') : `${a}/${m}`;
                for (const [sv, ev] of [[0, 0], [1, 1], [0, 3], [1, 2]] as const) {
                  expectClose(s.count(key, sv, ev), model.union(inside(key), now, sv, ev), `${key} windows ${sv}-${ev}`);
                }
              }
            }
          }
        }),
        { numRuns: 60 },
      );
    });
  }

  it('top ranks prefixes by distinct values, at kept and other masks', () => {
    fc.assert(
      fc.property(opsFor(5), (ops) => {
        const clock = new ManualClock(T0);
        const s = defineSeries({ name: 'd', type: 'cidr', interval: INTERVAL, windows: WINDOWS, options: { distinct: true, levels: [24] } }, clock) as DistinctCidrSeries;
        const addrs = ['192.0.2.1', '192.0.2.77', '192.0.3.5', '198.51.100.9', '198.51.100.200'];
        const model = new SetModel();
        for (const o of ops) {
          if (o.op !== 'add') continue;
          const cur = Math.floor(clock.now() / (INTERVAL * 1000));
          for (let i = o.from; i < o.from + o.n; i++) {
            s.addValue(addrs[o.key]!, value(i));
            model.add(addrs[o.key]!, cur, value(i));
          }
        }
        const cur = Math.floor(clock.now() / (INTERVAL * 1000));
        for (const mask of [32, 24, 22]) {
          const top = s.top({ mask, limit: 10 });
          for (const { key, count } of top) {
            const q = parsePrefix(key)!;
            expectClose(count, model.union((k) => prefixContains(q.words, mask, parsePrefix(k)!.words, 32, 1), cur, 0, 3), `top /${mask} ${key}`);
          }
          const groups = new Set([...model.data.keys()].map((k) => formatPrefix(4, (() => { const w = Uint32Array.from(parsePrefix(k)!.words); w[0] = mask === 0 ? 0 : (w[0]! & ((0xffffffff << (32 - mask)) >>> 0)) >>> 0; return w; })(), mask)));
          expect(top.length).toBe(Math.min(10, groups.size));
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe('distinct string series vs a Set model', () => {
  it('counts per key, total, window aging, remove_item and snapshots', () => {
    const users = ['alice', 'bob', 'carol'];
    fc.assert(
      fc.property(opsFor(users.length), (ops) => {
        const clock = new ManualClock(T0);
        const def = { name: 'u', type: 'string' as const, interval: INTERVAL, windows: WINDOWS, options: { distinct: true } };
        let s = defineSeries(def, clock) as DistinctStringSeries;
        const model = new SetModel();
        for (const o of ops) {
          const cur = Math.floor(clock.now() / (INTERVAL * 1000));
          if (o.op === 'add') {
            for (let i = o.from; i < o.from + o.n; i++) {
              s.addValue(users[o.key]!, value(i));
              model.add(users[o.key]!, cur, value(i));
            }
          } else if (o.op === 'tick') clock.advanceSeconds(o.windows * INTERVAL);
          else if (o.op === 'remove') {
            s.removeItem(users[o.key]!);
            model.remove((k) => k === users[o.key]);
          } else if (o.op === 'compact') s.compact();
          else {
            const t = defineSeries(def, clock) as DistinctStringSeries;
            t.restore(JSON.parse(JSON.stringify(s.snapshot())));
            s = t;
          }
          const now = Math.floor(clock.now() / (INTERVAL * 1000));
          for (const [sv, ev] of [[0, 0], [1, 1], [0, 3]] as const) {
            for (const u of users) expectClose(s.count(u, sv, ev), model.union((k) => k === u, now, sv, ev), `${u} ${sv}-${ev}`);
            expectClose(s.total(sv, ev), model.union(() => true, now, sv, ev), `total ${sv}-${ev}`);
          }
        }
      }),
      { numRuns: 80 },
    );
  });
});

describe('distinct series: the error bound', () => {
  it.each([1_000, 10_000])('within 2 percent at %i distinct values, over 4 windows and at a /24 of 16 addresses', (n) => {
    const clock = new ManualClock(T0);
    const s = defineSeries({ name: 'd', type: 'cidr', interval: INTERVAL, windows: WINDOWS, options: { distinct: true, levels: [24] } }, clock) as DistinctCidrSeries;
    // n values spread over 16 addresses and 4 windows, every value seen twice (another address, another window)
    for (let w = 0; w < WINDOWS; w++) {
      for (let i = w; i < n; i += WINDOWS) {
        s.addValue(`192.0.2.${i % 16}`, value(i));
        s.addValue(`192.0.2.${(i + 5) % 16}`, value(i));
      }
      if (w < WINDOWS - 1) clock.advanceSeconds(INTERVAL);
    }
    for (const key of ['192.0.2.0/24', '192.0.2.0/25', '0.0.0.0/0']) {
      const got = s.count(key, 0, 3);
      expect(Math.abs(got - n) / n, `${key}: ${got}`).toBeLessThanOrEqual(0.02);
    }
    expect(s.count('192.0.2.0/24', 0, 0)).toBeGreaterThan(0);
  });

  it('is exact up to 64 values, in every form of a union', () => {
    const clock = new ManualClock(T0);
    const s = defineSeries({ name: 'd', type: 'cidr', interval: INTERVAL, windows: WINDOWS, options: { distinct: true, levels: [24] } }, clock) as DistinctCidrSeries;
    for (let i = 0; i < 64; i++) s.addValue(`192.0.2.${i % 7}`, value(i));
    expect(s.count('192.0.2.0/24')).toBe(64);
    expect(s.count('192.0.2.0/25')).toBe(64);
    expect(s.count('0.0.0.0/0')).toBe(64);
    expect(s.top({ mask: 24 })).toEqual([{ key: '192.0.2.0/24', count: 64 }]);
  });
});
