import { describe, expect, it } from 'vitest';
import { FiringRates, MINUTES } from '../../../src/admin/firing-rates.js';

const T0 = 1_800_000_000_000; // a whole minute
const MIN = 60_000;
const counts = (o: Record<string, number>): Map<string, number> => new Map(Object.entries(o));

describe('FiringRates', () => {
  it('takes the first sample as the baseline: firings before it are not this hour', () => {
    const r = new FiringRates();
    r.sample(T0, counts({ 'flood\ttempfail\tenforce': 40 }));
    expect(r.rates(T0)).toEqual([]);
  });

  it('puts what a count grew by into the minute of the sample, oldest minute first', () => {
    const r = new FiringRates();
    r.sample(T0, counts({}));
    r.sample(T0 + 10_000, counts({ 'flood\ttempfail\tenforce': 3 }));
    r.sample(T0 + 2 * MIN + 5_000, counts({ 'flood\ttempfail\tenforce': 5, 'dha\treject\tshadow': 1 }));
    const rates = r.rates(T0 + 2 * MIN + 6_000);
    expect(rates.map((x) => [x.policy, x.action, x.mode, x.total])).toEqual([
      ['flood', 'tempfail', 'enforce', 5],
      ['dha', 'reject', 'shadow', 1],
    ]);
    const flood = rates[0]!.per_minute;
    expect(flood).toHaveLength(MINUTES);
    expect(flood.slice(-3)).toEqual([3, 0, 2]);
    expect(flood.slice(0, -3).every((n) => n === 0)).toBe(true);
  });

  it('forgets minutes older than an hour, and a policy that has not fired in an hour', () => {
    const r = new FiringRates();
    r.sample(T0, counts({}));
    r.sample(T0, counts({ a: 2 }));
    r.sample(T0 + 30 * MIN, counts({ a: 3 }));
    expect(r.rates(T0 + 59 * MIN)[0]!.total).toBe(3);
    expect(r.rates(T0 + 60 * MIN)[0]!.total).toBe(1); // the first minute slid out
    // a minute's slot reused an hour later starts from zero
    r.sample(T0 + 60 * MIN, counts({ a: 7 }));
    expect(r.rates(T0 + 60 * MIN)[0]!.per_minute.at(-1)).toBe(4);
    expect(r.rates(T0 + 121 * MIN)).toEqual([]);
  });
});
