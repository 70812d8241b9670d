import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, CidrSeries, StringSeries } from '../../../src/series/index.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import { InvalidKeyError, SeriesDefinitionError, UnknownSeriesError, WindowRangeError } from '../../../src/errors.js';

const T0 = 1_800_000_000_000; // a multiple of 300 s and 60 s: a window boundary

function cidr(clock: ManualClock, windows = 4, interval = 60, options = {}): CidrSeries {
  return defineSeries({ name: 'c', type: 'cidr', interval, windows, options }, clock) as CidrSeries;
}

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

describe('max_keys eviction', () => {
  it('evicts the least recently touched key and keeps prefix sums consistent', () => {
    const clock = new ManualClock(T0);
    const s = cidr(clock, 4, 60, { max_keys: 3 });
    s.add('10.0.0.1', 1);
    s.add('10.0.0.2', 2);
    s.add('10.0.1.3', 4);
    s.add('10.0.0.1', 1); // touch .1: .2 is now the oldest
    s.add('10.0.2.4', 8); // evicts 10.0.0.2
    expect(s.size()).toBe(3);
    expect(s.count('10.0.0.2')).toBe(0);
    expect(s.count('10.0.0.1')).toBe(2);
    expect(s.count('10.0.0.0/24')).toBe(2);
    expect(s.count('10.0.0.0/8')).toBe(14);
    expect(s.count('0.0.0.0/0')).toBe(14);
    s.add('10.0.3.5');
    expect(s.count('10.0.1.3')).toBe(0); // .3 was the oldest after .1 was touched
    expect(s.count('10.0.0.1')).toBe(2);
    expect(s.count('10.0.0.0/16')).toBe(11);
    expect(s.top({ mask: 24 })).toEqual([
      { key: '10.0.2.0/24', count: 8 },
      { key: '10.0.0.0/24', count: 2 },
      { key: '10.0.3.0/24', count: 1 },
    ]);
  });

  it('bounds a string series too', () => {
    const s = defineSeries({ name: 's', type: 'string', interval: 60, windows: 2, options: { max_keys: 100 } }, new ManualClock(T0)) as StringSeries;
    for (let i = 0; i < 1000; i++) s.add(`sender${i}.example`);
    expect(s.size()).toBe(100);
    expect(s.count('sender999.example')).toBe(1);
    expect(s.count('sender0.example')).toBe(0);
    expect(s.total()).toBe(100);
  });
});

describe('max_keys: one client cannot wipe the counts (segmented LRU)', () => {
  it('string series: 1,000 one-shot senders do not evict a sender over its limit, nor keys seen twice', () => {
    const s = defineSeries({ name: 'mailfrom', type: 'string', interval: 900, windows: 4, options: { max_keys: 1000 } }, new ManualClock(T0)) as StringSeries;
    for (let i = 0; i < 6; i++) s.add('spam.example'); // a policy `above: 5` refuses the 6th MAIL
    expect(s.count('spam.example', 0, 3)).toBe(6);
    for (let i = 0; i < 200; i++) {
      s.add(`regular${i}.example`);
      s.add(`regular${i}.example`);
    }
    for (let i = 0; i < 300; i++) s.add(`once${i}.example`);
    // one connection pipelines 1,000 RSET + MAIL FROM:<a@dN.example>
    for (let i = 0; i < 1000; i++) s.add(`d${i}.example`);
    expect(s.count('spam.example', 0, 3)).toBe(6);
    for (let i = 0; i < 200; i++) expect(s.count(`regular${i}.example`, 0, 3)).toBe(2);
    expect(s.size()).toBe(1000);
    // the one-shot keys only pushed out each other: the newest of the flood are there, the oldest went
    expect(s.count('d999.example')).toBe(1);
    expect(s.count('once0.example')).toBe(0);
    expect(s.evicted()).toBe(201 + 300 + 1000 - 1000);
  });

  it('cidr series: 1,000 one-shot addresses do not evict an address over its limit', () => {
    const s = cidr(new ManualClock(T0), 4, 900, { max_keys: 1000 });
    for (let i = 0; i < 6; i++) s.add('192.0.2.66');
    for (let i = 0; i < 100; i++) {
      s.add(`198.51.100.${i}`, 1 + (i % 2)); // an add worth 2 is protected at once
      s.add(`198.51.100.${i}`);
    }
    for (let i = 0; i < 1000; i++) s.add(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    expect(s.count('192.0.2.66', 0, 3)).toBe(6);
    expect(s.count('192.0.2.0/24', 0, 3)).toBe(6);
    for (let i = 0; i < 100; i++) expect(s.count(`198.51.100.${i}`, 0, 3)).toBe(2 + (i % 2));
    expect(s.count('198.51.100.0/24', 0, 3)).toBe(250);
    expect(s.size()).toBe(1000);
    // the aggregates only hold what the surviving leaves hold
    expect(s.count('0.0.0.0/0', 0, 3)).toBe(6 + 250 + (1000 - 101));
    expect(s.count('10.0.0.0/8', 0, 3)).toBe(1000 - 101);
  });

  it('protected holds at most 90% of max_keys, so new keys still get room to be seen twice', () => {
    const s = defineSeries({ name: 'm', type: 'string', interval: 60, windows: 2, options: { max_keys: 100 } }, new ManualClock(T0)) as StringSeries;
    for (let i = 0; i < 150; i++) s.add(`heavy${i}`, 2); // 2 at once: protected right away
    expect(s.protectedSize()).toBe(90);
    expect(s.size()).toBe(100);
    // a newcomer seen twice in a row makes it, even with protected full
    s.add('new.example');
    s.add('new.example');
    expect(s.count('new.example')).toBe(2);
    expect(s.count('heavy149')).toBe(2);
  });

  it('a restored series keeps its segments: a flood after a restart still cannot wipe the heavy keys', () => {
    const clock = new ManualClock(T0);
    const def = { name: 'mailfrom', type: 'string' as const, interval: 900, windows: 4, options: { max_keys: 1000 } };
    const a = defineSeries(def, clock) as StringSeries;
    for (let i = 0; i < 6; i++) a.add('spam.example');
    for (let i = 0; i < 500; i++) a.add(`once${i}.example`);
    const b = defineSeries(def, clock) as StringSeries;
    expect(b.restore(a.snapshot())).toBe(501);
    expect(b.protectedSize()).toBe(1);
    for (let i = 0; i < 1000; i++) b.add(`d${i}.example`);
    expect(b.count('spam.example')).toBe(6);
    expect(b.snapshot().entries.map(([k]) => k).slice(-2)).toEqual(['d999.example', 'spam.example']);
  });
});

describe('compaction', () => {
  it('shrinks the arrays once most keys aged out, and keeps every count exact', () => {
    const clock = new ManualClock(T0);
    const s = cidr(clock, 2, 60);
    const str = defineSeries({ name: 's', type: 'string', interval: 60, windows: 2 }, clock) as StringSeries;
    for (let i = 0; i < 50_000; i++) {
      const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      s.add(ip);
      str.add(ip);
    }
    clock.advanceSeconds(60);
    for (let i = 0; i < 1000; i++) {
      const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      s.add(ip, 2);
      str.add(ip, 2);
    }
    const bigC = s.memoryBytes();
    const bigS = str.memoryBytes();
    clock.advanceSeconds(60); // the 49,000 seen only in the first window age out
    expect(s.size()).toBe(1000);
    expect(str.size()).toBe(1000);
    expect(s.memoryBytes()).toBeLessThan(bigC / 10);
    expect(str.memoryBytes()).toBeLessThan(bigS / 10);
    for (let i = 0; i < 1000; i++) {
      const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      expect(s.count(ip, 0, 1)).toBe(2);
      expect(str.count(ip, 0, 1)).toBe(2);
    }
    expect(s.count('10.0.0.0/16', 0, 1)).toBe(2000);
    expect(s.count('0.0.0.0/0', 0, 1)).toBe(2000);
    expect(s.top({ mask: 24, limit: 1 })).toEqual([{ key: '10.0.0.0/24', count: 512 }]);
    // and it grows again as before
    for (let i = 0; i < 20_000; i++) s.add(`172.16.${(i >> 8) & 255}.${i & 255}`);
    expect(s.size()).toBe(21_000);
    expect(s.count('172.16.0.0/12', 0, 1)).toBe(20_000);
  });
});

describe('string series', () => {
  it('counts exact keys over windows, removes and ranks them', () => {
    const clock = new ManualClock(T0);
    const s = defineSeries({ name: 'helo', type: 'string', interval: 60, windows: 3 }, clock) as StringSeries;
    s.add('mx.example.com');
    s.add('MX.example.com', 2);
    clock.advanceSeconds(60);
    s.add('mx.example.com', 3);
    expect(s.count('mx.example.com', 0, 2)).toBe(4);
    expect(s.count('MX.example.com', 0, 2)).toBe(2);
    expect(s.top()).toEqual([
      { key: 'mx.example.com', count: 4 },
      { key: 'MX.example.com', count: 2 },
    ]);
    expect(s.removeItem('MX.example.com')).toBe(1);
    expect(s.total(0, 2)).toBe(4);
    expect(() => s.add('')).toThrow(InvalidKeyError);
    expect(() => s.add('x'.repeat(2000))).toThrow(InvalidKeyError);
  });
});

describe('snapshots', () => {
  it('round-trips and shifts windows by the time elapsed', () => {
    const clock = new ManualClock(T0);
    const a = cidr(clock);
    a.add('192.0.2.1', 1);
    clock.advanceSeconds(60);
    a.add('192.0.2.1', 2);
    a.add('198.51.100.1', 5);
    const snap = JSON.parse(JSON.stringify(a.snapshot()));
    expect(snap.entries).toEqual([
      ['192.0.2.1', [2, 1, 0, 0]],
      ['198.51.100.1', [5, 0, 0, 0]],
    ]);
    clock.advanceSeconds(120);
    const b = cidr(clock);
    expect(b.restore(snap)).toBe(2);
    expect(b.count('192.0.2.1', 2)).toBe(2);
    expect(b.count('192.0.2.1', 3)).toBe(1);
    expect(b.count('0.0.0.0/0', 0, 3)).toBe(8);
    clock.advanceSeconds(60);
    expect(b.count('192.0.2.1', 0, 3)).toBe(2);
  });

  it('drops everything when the whole coverage elapsed, and refuses a mismatched snapshot', () => {
    const clock = new ManualClock(T0);
    const a = cidr(clock);
    a.add('192.0.2.1', 3);
    const snap = a.snapshot();
    clock.advanceSeconds(240);
    const b = cidr(clock);
    expect(b.restore(snap)).toBe(0);
    expect(b.size()).toBe(0);
    const c = defineSeries({ name: 'c', type: 'cidr', interval: 30, windows: 4 }, clock);
    expect(() => c.restore(snap)).toThrow(/snapshot is cidr\/60s/);
  });
});

describe('definitions and registry', () => {
  it('refuses bad definitions', () => {
    const clock = new ManualClock(T0);
    expect(() => defineSeries({ name: 'x', type: 'cidr', interval: 0, windows: 4 }, clock)).toThrow(SeriesDefinitionError);
    expect(() => defineSeries({ name: 'x', type: 'cidr', interval: 60, windows: 0 }, clock)).toThrow(SeriesDefinitionError);
    expect(() => defineSeries({ name: 'x', type: 'cidr', interval: 60, windows: 2, options: { store_prefix: 64 } }, clock)).toThrow(
      /store_prefix applies to cidr_ipv6 only/,
    );
    expect(() => defineSeries({ name: 'x y', type: 'cidr', interval: 60, windows: 2 }, clock)).toThrow(SeriesDefinitionError);
    expect(() => defineSeries({ name: 'x', type: 'bogus' as 'cidr', interval: 60, windows: 2 }, clock)).toThrow(SeriesDefinitionError);
  });

  it('keeps counts when a reload redefines the same shape, restarts on a new shape', () => {
    const reg = new SeriesRegistry(new ManualClock(T0));
    reg.define({ name: 'c', type: 'cidr', interval: 60, windows: 4 }).add('192.0.2.1');
    expect(reg.define({ name: 'c', type: 'cidr', interval: 60, windows: 4 }).count('192.0.2.1')).toBe(1);
    expect(reg.define({ name: 'c', type: 'cidr', interval: 60, windows: 5 }).count('192.0.2.1')).toBe(0);
    expect(() => reg.get('nope')).toThrow(UnknownSeriesError);
    reg.retain([]);
    expect(reg.list()).toEqual([]);
  });
});

describe('window close listener', () => {
  it('reports each closed window once with its final counts, even with one window', () => {
    const clock = new ManualClock(T0);
    const s = cidr(clock, 1);
    const closed: Array<{ window: number; entries: Array<[string, number]> }> = [];
    s.onWindowClosed((c) => closed.push({ window: c.window, entries: c.entries }));
    s.add('192.0.2.1', 2);
    s.add('192.0.2.9');
    clock.advanceSeconds(60);
    expect(s.currentWindow()).toBe(T0 / 60_000 + 1);
    s.add('192.0.2.1');
    clock.advanceSeconds(600);
    s.currentWindow();
    expect(closed).toEqual([
      { window: T0 / 60_000, entries: [['192.0.2.9', 1], ['192.0.2.1', 2]] },
      { window: T0 / 60_000 + 1, entries: [['192.0.2.1', 1]] },
    ]);
  });
});

describe('topAsync', () => {
  it('gives the event loop turns while scanning and agrees with top', async () => {
    const s = cidr(new ManualClock(T0), 4, 60, { max_keys: 500_000 });
    for (let i = 0; i < 200_000; i++) s.add(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1 + (i % 7));
    let turns = 0;
    let stop = false;
    const spin = (): void => {
      turns++;
      if (!stop) setImmediate(spin);
    };
    setImmediate(spin);
    const got = await s.topAsync({ mask: 28, limit: 5 });
    stop = true;
    expect(turns).toBeGreaterThan(2);
    expect(got).toEqual(s.top({ mask: 28, limit: 5 }));
    expect(got[0]!.count).toBeGreaterThan(0);
  });
});
