/**
 * A distinct series bounded by max_keys, against an exact model: an evicted address counts 0,
 * a surviving one counts exactly its values, and the kept prefixes keep every value ever added
 * (as the Redis layout's prefix sets do) while they hold an address, /0 always, until they age out.
 * Without the distinct series' own detachCounts, an eviction took the address's count out of its
 * prefix's per-window size and a count there read one short (or 0).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, type DistinctCidrSeries } from '../../../src/series/index.js';

const INTERVAL = 60;
const T0 = 1_800_000_000_000;
const MAX_KEYS = 4;
const ADDRS = Array.from({ length: 12 }, (_, i) => `192.0.${2 + (i % 2)}.${10 + i}`);

describe('distinct series and max_keys', () => {
  it('evicts whole addresses; survivors stay exact; kept prefixes and /0 keep the evicted values', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(ADDRS.length - 1), fc.nat(30)), { minLength: 1, maxLength: 60 }), (adds) => {
        const clock = new ManualClock(T0);
        const s = defineSeries({ name: 'd', type: 'cidr', interval: INTERVAL, windows: 2, options: { distinct: true, levels: [24], max_keys: MAX_KEYS } }, clock) as DistinctCidrSeries;
        const perAddr = new Map<string, Set<string>>();
        const perNet = new Map<string, Set<string>>();
        const all = new Set<string>();
        const netOf = (addr: string): string => `${addr.slice(0, addr.lastIndexOf('.'))}.0/24`;
        /** Prefixes that lost an address to eviction. */
        const lost = new Set<string>();
        for (const [a, v] of adds) {
          const addr = ADDRS[a]!;
          const value = `rcpt${v}@example.net`;
          s.addValue(addr, value);
          for (const [m, k] of [
            [perAddr, addr],
            [perNet, netOf(addr)],
          ] as const) {
            if (!m.has(k)) m.set(k, new Set());
            m.get(k)!.add(value);
          }
          all.add(value);
          // an address is evicted whole (its count drops to 0, and it starts afresh if it comes back); the others stay exact
          for (const [other, values] of [...perAddr]) {
            const c = s.count(other);
            if (c === 0 && other !== addr) {
              perAddr.delete(other);
              lost.add(netOf(other));
            } else expect(c, other).toBe(values.size);
          }
          expect(perAddr.size).toBe(s.size());
        }
        expect(s.size()).toBeLessThanOrEqual(MAX_KEYS);
        for (const [net, values] of perNet) {
          // at least its surviving addresses' values, at most every value it ever had (a prefix goes with its last address)
          const inNet = [...perAddr].filter(([a]) => netOf(a) === net);
          const surviving = new Set(inNet.flatMap(([, v]) => [...v]));
          const c = s.count(net);
          expect(c, net).toBeGreaterThanOrEqual(surviving.size);
          expect(c, net).toBeLessThanOrEqual(values.size);
          if (!lost.has(net)) expect(c, net).toBe(values.size);
        }
        expect(s.count('0.0.0.0/0')).toBe(all.size);
        clock.advanceSeconds(2 * INTERVAL); // every window aged out
        expect(s.count('192.0.2.0/24', 0, 1) + s.count('192.0.3.0/24', 0, 1) + s.count('0.0.0.0/0', 0, 1)).toBe(0);
      }),
      { numRuns: 100 },
    );
  });
});
