// Shared by the test/unit/series/series-*.test.ts files.
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, CidrSeries } from '../../../src/series/index.js';

export const T0 = 1_800_000_000_000; // a multiple of 300 s and 60 s: a window boundary

export function cidr(clock: ManualClock, windows = 4, interval = 60, options = {}): CidrSeries {
  return defineSeries({ name: 'c', type: 'cidr', interval, windows, options }, clock) as CidrSeries;
}
