import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, StringSeries } from '../../../src/series/index.js';
import { T0, cidr } from './series-helpers.js';

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
