import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, CidrSeries } from '../../../src/series/index.js';
import { InvalidKeyError, WindowRangeError } from '../../../src/errors.js';
import { T0, cidr } from './series-helpers.js';

describe('cidr series: windows', () => {
  it('adds to the current window and counts inclusive ranges', () => {
    const clock = new ManualClock(T0);
    const s = cidr(clock);
    s.add('192.0.2.1');
    s.add('192.0.2.1', 2);
    expect(s.count('192.0.2.1')).toBe(3);
    clock.advanceSeconds(60);
    s.add('192.0.2.1', 5);
    expect(s.count('192.0.2.1')).toBe(5);
    expect(s.count('192.0.2.1', 1)).toBe(3);
    expect(s.count('192.0.2.1', 0, 1)).toBe(8);
    expect(s.count('192.0.2.1', 0, 3)).toBe(8);
    expect(s.count('192.0.2.1', 2, 3)).toBe(0);
  });

  it('aligns windows to the epoch, not to the first event', () => {
    const clock = new ManualClock(T0 + 59_999);
    const s = cidr(clock);
    s.add('192.0.2.1');
    clock.advance(1); // crosses T0+60s
    expect(s.count('192.0.2.1')).toBe(0);
    expect(s.count('192.0.2.1', 1)).toBe(1);
    expect(s.currentWindow()).toBe((T0 + 60_000) / 60_000);
    expect(s.msUntilRollover()).toBe(60_000);
  });

  it('ages counts out with the clock alone and drops idle keys', () => {
    const clock = new ManualClock(T0);
    const s = cidr(clock);
    s.add('192.0.2.1', 4);
    s.add('198.51.100.9');
    clock.advanceSeconds(3 * 60);
    expect(s.count('192.0.2.1', 0, 3)).toBe(4);
    expect(s.count('192.0.2.1', 3)).toBe(4);
    clock.advanceSeconds(60);
    expect(s.count('192.0.2.1', 0, 3)).toBe(0);
    expect(s.count('0.0.0.0/0', 0, 3)).toBe(0);
    expect(s.size()).toBe(0);
  });

  it('survives a long idle period (many windows elapsed at once)', () => {
    const clock = new ManualClock(T0);
    const s = cidr(clock);
    for (let i = 0; i < 100; i++) s.add(`10.0.${i}.1`);
    clock.advanceSeconds(86_400 * 30);
    expect(s.count('10.0.0.0/8', 0, 3)).toBe(0);
    expect(s.size()).toBe(0);
    s.add('10.0.0.1');
    expect(s.count('10.0.0.0/8')).toBe(1);
  });

  it('takes negative counts, and sums them in prefixes', () => {
    const clock = new ManualClock(T0);
    const s = cidr(clock);
    s.add('192.0.2.1', 5);
    s.add('192.0.2.1', -2);
    s.add('192.0.2.2', -1);
    expect(s.count('192.0.2.1')).toBe(3);
    expect(s.count('192.0.2.2')).toBe(-1);
    expect(s.count('192.0.2.0/24')).toBe(2);
  });

  it('ignores a clock that moves backwards', () => {
    const clock = new ManualClock(T0 + 120_000);
    const s = cidr(clock);
    s.add('192.0.2.1');
    clock.set(T0);
    s.add('192.0.2.1');
    expect(s.count('192.0.2.1')).toBe(2);
  });

  it('refuses bad window ranges and non-finite counts', () => {
    const s = cidr(new ManualClock(T0));
    expect(() => s.count('192.0.2.1', 2, 1)).toThrow(WindowRangeError);
    expect(() => s.count('192.0.2.1', -1, 1)).toThrow(WindowRangeError);
    expect(() => s.count('192.0.2.1', 0.5, 1)).toThrow(WindowRangeError);
    expect(() => s.add('192.0.2.1', Number.NaN)).toThrow(WindowRangeError);
    expect(() => s.add('192.0.2.1', 0.5)).toThrow(WindowRangeError);
    expect(() => s.add('192.0.2.1', 2 ** 32)).toThrow(WindowRangeError);
  });

  it('saturates window counts instead of wrapping', () => {
    const s = cidr(new ManualClock(T0));
    s.add('192.0.2.1', 2 ** 31 - 1);
    s.add('192.0.2.1', 5);
    expect(s.count('192.0.2.1')).toBe(2 ** 31 - 1);
    s.add('192.0.2.1', -10);
    expect(s.count('192.0.2.1')).toBe(2 ** 31 - 11);
  });
});

describe('cidr series: masks', () => {
  const clock = new ManualClock(T0);
  const s = cidr(clock);
  s.add('192.0.2.1', 1);
  s.add('192.0.2.200', 2);
  s.add('192.0.3.1', 4);
  s.add('192.1.0.1', 8);
  s.add('10.9.9.9', 16);
  s.add('::ffff:192.0.2.1', 32); // mapped: same key as 192.0.2.1

  it('counts /32, /24, /16, /8 and /0', () => {
    expect(s.count('192.0.2.1')).toBe(33);
    expect(s.count('192.0.2.1/32')).toBe(33);
    expect(s.count('192.0.2.99/24')).toBe(35);
    expect(s.count('192.0.0.0/16')).toBe(39);
    expect(s.count('192.0.0.0/8')).toBe(47);
    expect(s.count('0.0.0.0/0')).toBe(63);
    expect(s.count('0.0.0.0/0', 0, 3)).toBe(63);
  });

  it('counts masks between the kept levels exactly', () => {
    expect(s.count('192.0.2.0/25')).toBe(33);
    expect(s.count('192.0.2.128/25')).toBe(2);
    expect(s.count('192.0.2.0/23')).toBe(39);
    expect(s.count('192.0.0.0/15')).toBe(47);
    expect(s.count('128.0.0.0/1')).toBe(47);
    expect(s.count('0.0.0.0/1')).toBe(16);
    expect(s.count('192.0.2.0/31')).toBe(33);
    expect(s.count('172.16.0.0/12')).toBe(0);
  });

  it('ignores the other family with a clear zero, and throws a typed error for garbage', () => {
    expect(s.add('2001:db8::1')).toBe(false);
    expect(s.count('2001:db8::1')).toBe(0);
    expect(s.count('0.0.0.0/0')).toBe(63);
    expect(() => s.count('not-an-ip')).toThrow(InvalidKeyError);
    expect(() => s.add('192.0.2.0/24')).toThrow(InvalidKeyError);
  });

  it('lists top prefixes at any mask', () => {
    expect(s.top({ mask: 24, limit: 3 })).toEqual([
      { key: '192.0.2.0/24', count: 35 },
      { key: '10.9.9.0/24', count: 16 },
      { key: '192.1.0.0/24', count: 8 },
    ]);
    expect(s.top({ mask: 32, limit: 2 })).toEqual([
      { key: '192.0.2.1', count: 33 },
      { key: '10.9.9.9', count: 16 },
    ]);
    expect(s.top({ mask: 12 })).toEqual([
      { key: '192.0.0.0/12', count: 47 },
      { key: '10.0.0.0/12', count: 16 },
    ]);
    expect(s.top({ mask: 0 })).toEqual([{ key: '0.0.0.0/0', count: 63 }]);
  });
});

describe('cidr series: remove_item', () => {
  it('removes one address or every address in a prefix, from all windows', () => {
    const clock = new ManualClock(T0);
    const s = cidr(clock);
    s.add('192.0.2.1', 3);
    clock.advanceSeconds(60);
    s.add('192.0.2.1', 3);
    s.add('192.0.2.2', 1);
    s.add('192.0.3.1', 1);
    expect(s.removeItem('192.0.2.1')).toBe(1);
    expect(s.count('192.0.2.1', 0, 3)).toBe(0);
    expect(s.count('192.0.0.0/16', 0, 3)).toBe(2);
    expect(s.removeItem('192.0.2.0/24')).toBe(1);
    expect(s.count('192.0.0.0/16', 0, 3)).toBe(1);
    expect(s.count('0.0.0.0/0', 0, 3)).toBe(1);
    expect(s.removeItem('192.0.0.0/8')).toBe(1);
    expect(s.size()).toBe(0);
    expect(s.removeItem('192.0.2.1')).toBe(0);
  });
});

describe('cidr_ipv6 series', () => {
  it('counts /48 /56 /64 /128 and folds mapped addresses out', () => {
    const clock = new ManualClock(T0);
    const s = defineSeries({ name: 'v6', type: 'cidr_ipv6', interval: 60, windows: 2 }, clock) as CidrSeries;
    s.add('2001:db8:1:1::1');
    s.add('2001:db8:1:1::2', 2);
    s.add('2001:db8:1:2::1', 4);
    s.add('2001:db8:2::1', 8);
    expect(s.add('::ffff:192.0.2.1')).toBe(false);
    expect(s.add('192.0.2.1')).toBe(false);
    expect(s.count('2001:db8:1:1::1')).toBe(1);
    expect(s.count('2001:db8:1:1::/64')).toBe(3);
    expect(s.count('2001:db8:1::/56')).toBe(7);
    expect(s.count('2001:db8:1::/48')).toBe(7);
    expect(s.count('2001:db8::/32')).toBe(15);
    expect(s.count('::/0')).toBe(15);
    expect(s.count('2001:db8:1:1::/100')).toBe(3);
    expect(s.count('2001:db8:1:1::/127')).toBe(1);
    expect(s.count('2001:db8:1:1::/126')).toBe(3);
    expect(s.top({ mask: 48 })).toEqual([
      { key: '2001:db8:2::/48', count: 8 },
      { key: '2001:db8:1::/48', count: 7 },
    ]);
  });

  it('store_prefix makes a client cycling inside its /64 one key', () => {
    const clock = new ManualClock(T0);
    const s = defineSeries(
      { name: 'v6', type: 'cidr_ipv6', interval: 60, windows: 2, options: { store_prefix: 64 } },
      clock,
    ) as CidrSeries;
    for (let i = 1; i <= 50; i++) s.add(`2001:db8:0:7::${i.toString(16)}`);
    expect(s.size()).toBe(1);
    expect(s.count('2001:db8:0:7::ffff')).toBe(50);
    expect(s.count('2001:db8:0:7::/64')).toBe(50);
    expect(s.snapshot().entries).toEqual([['2001:db8:0:7::/64', [50, 0]]]);
    expect(s.top()).toEqual([{ key: '2001:db8:0:7::/64', count: 50 }]);
  });
});
