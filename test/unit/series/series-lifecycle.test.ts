import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, StringSeries } from '../../../src/series/index.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import { InvalidKeyError, SeriesDefinitionError, UnknownSeriesError } from '../../../src/errors.js';
import { T0, cidr } from './series-helpers.js';

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
