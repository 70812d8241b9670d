/** Window counts: 32-bit and saturating by default; 64-bit-safe doubles for a `wide` series (message bytes). */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, type CidrSeries, type StringSeries } from '../../../src/series/index.js';

const GB = 1024 ** 3;

describe('wide series', () => {
  it('sum sizes past 2^31 exactly, per address, prefix, /0, window and after compaction and restore', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const def = { name: 'bytes', type: 'cidr' as const, interval: 3600, windows: 24, options: { wide: true, levels: [24] } };
    const s = defineSeries(def, clock) as CidrSeries;
    for (let i = 0; i < 5; i++) s.add('192.0.2.1', GB); // 5 GiB in one window of one address
    s.add('192.0.2.2', 2 * GB - 1);
    expect(s.count('192.0.2.1')).toBe(5 * GB);
    expect(s.count('192.0.2.0/24')).toBe(7 * GB - 1);
    expect(s.count('192.0.2.0/25')).toBe(7 * GB - 1);
    expect(s.count('0.0.0.0/0')).toBe(7 * GB - 1);
    expect(s.top({ mask: 24 })).toEqual([{ key: '192.0.2.0/24', count: 7 * GB - 1 }]);
    s.compact();
    const t = defineSeries(def, clock) as CidrSeries;
    t.restore(JSON.parse(JSON.stringify(s.snapshot())));
    expect(t.count('192.0.2.0/24')).toBe(7 * GB - 1);
    expect(s.removeItem('192.0.2.1')).toBe(1);
    expect(s.count('192.0.2.0/24')).toBe(2 * GB - 1);
  });

  it('saturate at ±(2^53 - 1) instead of losing precision; string series too', () => {
    const s = defineSeries({ name: 'b', type: 'string', interval: 60, windows: 2, options: { wide: true } }, new ManualClock(0)) as StringSeries;
    for (let i = 0; i < 4_200_000; i++) s.add('big.example', 2 ** 31 - 1);
    expect(s.count('big.example')).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('cost 8 bytes per window count; ordinary series stay 32-bit and saturate at 2^31 - 1', () => {
    const clock = new ManualClock(0);
    const narrow = defineSeries({ name: 'n', type: 'cidr', interval: 60, windows: 4 }, clock) as CidrSeries;
    const wide = defineSeries({ name: 'w', type: 'cidr', interval: 60, windows: 4, options: { wide: true } }, clock) as CidrSeries;
    for (const s of [narrow, wide]) for (let i = 0; i < 3; i++) s.add('192.0.2.1', 2 ** 31 - 1);
    expect(narrow.count('192.0.2.1')).toBe(2 ** 31 - 1);
    expect(wide.count('192.0.2.1')).toBe(3 * (2 ** 31 - 1));
    expect(wide.memoryBytes() - narrow.memoryBytes()).toBe(64 * 4 * 4); // 64 initial entries × 4 windows × 4 more bytes
  });
});
