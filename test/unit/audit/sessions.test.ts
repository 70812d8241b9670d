import { describe, expect, it } from 'vitest';
import { SessionTracker } from '../../../src/audit/sessions.js';
import { ManualClock } from '../../../src/series/clock.js';
import { parseClientAddress } from '../../../src/series/address.js';

const a = (ip: string) => parseClientAddress(ip)!;

describe('SessionTracker', () => {
  it('counts open sessions per address, and per prefix once asked (seeded from what is open)', () => {
    const t = new SessionTracker(new ManualClock(1_800_000_000_000));
    for (const ip of ['192.0.2.1', '192.0.2.1', '192.0.2.7', '198.51.100.3', '2001:db8::1', '2001:db8::2']) t.opened(a(ip));
    expect(t.total()).toBe(6);
    expect(t.count('192.0.2.1')).toBe(2);
    expect(t.count('2001:db8:0:0::2')).toBe(1); // normalized on lookup
    // the first prefix question builds the prefix sums from the sessions already open
    expect(t.count('192.0.2.0/24')).toBe(3);
    expect(t.count('2001:db8::/64')).toBe(2);
    expect(t.top(24, 4, 10)).toEqual([
      { key: '192.0.2.0/24', count: 3 },
      { key: '198.51.100.0/24', count: 1 },
    ]);
    // from then on they follow opens and closes
    t.opened(a('192.0.2.9'));
    t.closed(a('192.0.2.1'));
    t.closed(a('198.51.100.3'));
    expect(t.count('192.0.2.0/24')).toBe(3);
    expect(t.count('198.51.100.0/24')).toBe(0);
    expect(t.top(24, 4, 10)).toEqual([{ key: '192.0.2.0/24', count: 3 }]);
    expect(t.count('192.0.2.1')).toBe(1);
    expect(t.total()).toBe(5);
  });

  it('ignores a close it never saw open', () => {
    const t = new SessionTracker(new ManualClock(0));
    t.closed(a('192.0.2.1'));
    expect(t.total()).toBe(0);
    expect(t.count('192.0.2.1')).toBe(0);
    t.opened(a('192.0.2.1'));
    t.closed(a('192.0.2.1'));
    t.closed(a('192.0.2.1'));
    expect(t.total()).toBe(0);
    expect(t.count('192.0.2.0/24')).toBe(0);
  });

  it('counts at a mask from a parsed address, by family; a client without an address is not tracked', () => {
    const t = new SessionTracker(new ManualClock(0));
    for (const ip of ['192.0.2.1', '192.0.2.200', '2001:db8:1::1', '2001:db8:1::2', '2001:db8:2::1']) t.opened(a(ip));
    t.opened(undefined);
    expect(t.total()).toBe(5);
    expect(t.countAt(a('192.0.2.99'), 24)).toBe(2);
    expect(t.countAt(a('192.0.2.1'), undefined)).toBe(1);
    expect(t.countAt(a('2001:db8:1::9'), 48)).toBe(2);
    expect(t.countAt(a('2001:db8::9'), 32)).toBe(3);
    t.closed(a('2001:db8:1::1'));
    expect(t.countAt(a('2001:db8:1::9'), 64)).toBe(1);
  });
});
