/** The ban list: lookup by client, expiry on the injected clock, escalation, bounds. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BanList, MANUAL_POLICY, clientPrefix, normalizeBanPrefix, type BanSpec } from '../../../src/bans/ban-list.js';
import { parseClientAddress, type ClientAddress } from '../../../src/series/address.js';
import { ManualClock } from '../../../src/series/clock.js';

const T0 = 1_800_000_000_000;
const MIN = 60_000;
const ip = (s: string): ClientAddress => parseClientAddress(s)!;
const spec = (forMin: number, factor: number, maxMin: number): BanSpec => ({ forMs: forMin * MIN, factor, maxMs: maxMin * MIN });

describe('BanList', () => {
  it('bans a prefix until it expires, on the injected clock', () => {
    const clock = new ManualClock(T0);
    const list = new BanList(clock);
    const r = list.issue('192.0.2.0/24', spec(10, 1, 10), 'dha-ban');
    expect(r).toEqual({ ban: { prefix: '192.0.2.0/24', since: T0, until: T0 + 10 * MIN, policy: 'dha-ban', level: 0 }, created: true });
    expect(list.check(ip('192.0.2.77'))?.prefix).toBe('192.0.2.0/24');
    expect(list.check(ip('::ffff:192.0.2.1'))?.prefix).toBe('192.0.2.0/24'); // IPv4-mapped is IPv4
    expect(list.check(ip('192.0.3.1'))).toBeUndefined();
    expect(list.check(ip('2001:db8::1'))).toBeUndefined();
    clock.advance(10 * MIN - 1);
    expect(list.check(ip('192.0.2.77'))).toBeDefined();
    clock.advance(1);
    expect(list.check(ip('192.0.2.77'))).toBeUndefined();
    expect(list.list()).toEqual([]);
    expect(list.size).toBe(1); // until the sweep
    expect(list.sweep()).toBe(1);
    expect(list.size).toBe(0);
  });

  it('finds the most specific active ban, skipping expired ones', () => {
    const clock = new ManualClock(T0);
    const list = new BanList(clock);
    list.put({ prefix: '10.0.0.0/8', since: T0, until: T0 + 60 * MIN, policy: MANUAL_POLICY, level: 0 });
    list.put({ prefix: '10.1.2.3/32', since: T0, until: T0 + MIN, policy: 'p', level: 0 });
    list.put({ prefix: '2001:db8::/32', since: T0, until: T0 + MIN, policy: 'p', level: 0 });
    list.put({ prefix: '2001:db8:1:2::/64', since: T0, until: T0 + 5 * MIN, policy: 'p', level: 0 });
    expect(list.check(ip('10.1.2.3'))?.prefix).toBe('10.1.2.3/32');
    expect(list.check(ip('2001:db8:1:2::99'))?.prefix).toBe('2001:db8:1:2::/64');
    expect(list.check(ip('2001:db8:ffff::1'))?.prefix).toBe('2001:db8::/32');
    clock.advance(2 * MIN);
    expect(list.check(ip('10.1.2.3'))?.prefix).toBe('10.0.0.0/8');
    expect(list.check(ip('2001:db8:ffff::1'))).toBeUndefined();
    expect(list.check(ip('2001:db8:1:2::99'))?.prefix).toBe('2001:db8:1:2::/64');
    expect(list.check(undefined)).toBeUndefined();
  });

  it('escalates a prefix banned again while its last ban lasts or ended less than max ago: for × factor^n, capped at max', () => {
    const clock = new ManualClock(T0);
    const list = new BanList(clock);
    const s = spec(10, 2, 60); // 10m, 20m, 40m, 60m (cap), 60m …
    const durations: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { ban } = list.issue('198.51.100.7/32', s, 'p')!;
      durations.push((ban.until - ban.since) / MIN);
      expect(ban.level).toBe(i);
      clock.set(ban.until); // banned again the moment it expires
    }
    expect(durations).toEqual([10, 20, 40, 60, 60]);
    // within max of the last ban's end the run goes on; once it ended max ago, it starts over
    clock.advance(60 * MIN - 1);
    expect(list.issue('198.51.100.7/32', s, 'p')!.ban.level).toBe(5);
    clock.set(list.get('198.51.100.7/32')!.until + 60 * MIN);
    expect(list.issue('198.51.100.7/32', s, 'p')!.ban).toMatchObject({ level: 0, until: clock.now() + 10 * MIN });
  });

  it('keeps an active ban as it is when the policy fires again, and a lift forgets the history', () => {
    const clock = new ManualClock(T0);
    const list = new BanList(clock);
    const s = spec(10, 2, 600);
    const first = list.issue('192.0.2.0/24', s, 'p')!;
    clock.advance(MIN);
    expect(list.issue('192.0.2.0/24', s, 'p')).toEqual({ ban: first.ban, created: false });
    expect(list.lift('192.0.2.0/24')).toEqual(first.ban);
    expect(list.lift('192.0.2.0/24')).toBeUndefined();
    expect(list.check(ip('192.0.2.1'))).toBeUndefined();
    expect(list.issue('192.0.2.0/24', s, 'p')!.ban.level).toBe(0);
  });

  it('is bounded: at the bound a new ban is skipped and counted, a replaced one is not', () => {
    const clock = new ManualClock(T0);
    const list = new BanList(clock, 2);
    expect(list.issue('192.0.2.1/32', spec(1, 1, 1), 'p')).toBeDefined();
    expect(list.issue('192.0.2.2/32', spec(1, 1, 1), 'p')).toBeDefined();
    expect(list.issue('192.0.2.3/32', spec(1, 1, 1), 'p')).toBeUndefined();
    expect(list.skipped).toBe(1);
    expect(list.put({ prefix: '192.0.2.2/32', since: T0, until: T0 + 5 * MIN, policy: MANUAL_POLICY, level: 0 })).toBe(true);
    expect(list.check(ip('192.0.2.3'))).toBeUndefined();
    expect(list.size).toBe(2);
  });

  it('normalizes prefixes and names a client at a policy mask', () => {
    expect(normalizeBanPrefix('192.0.2.77/24')?.prefix).toBe('192.0.2.0/24');
    expect(normalizeBanPrefix(' 198.51.100.7 ')?.prefix).toBe('198.51.100.7/32');
    expect(normalizeBanPrefix('2001:DB8:0:0::1/64')?.prefix).toBe('2001:db8::/64');
    expect(normalizeBanPrefix('::ffff:192.0.2.0/120')?.prefix).toBe('192.0.2.0/24');
    for (const bad of ['garbage', '192.0.2.0/33', '', '1.2.3', '2001:db8::/129']) expect(normalizeBanPrefix(bad)).toBeNull();
    expect(clientPrefix(ip('192.0.2.77'), 24)).toBe('192.0.2.0/24');
    expect(clientPrefix(ip('192.0.2.77'), undefined)).toBe('192.0.2.77/32');
    expect(clientPrefix(ip('2001:db8:1:2:3:4:5:6'), 64)).toBe('2001:db8:1:2::/64');
    expect(clientPrefix(ip('2001:db8::1'), undefined)).toBe('2001:db8::1/128');
  });

  it('agrees with a scan of the list for random bans and clients (both families, mixed lengths)', () => {
    const v4 = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.constantFrom(8, 16, 24, 30, 32)).map(([a, b, m]) => `10.${a}.${b}.${(a * 7 + b) % 256}/${m}`);
    const v6 = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 65535 }), fc.constantFrom(32, 48, 56, 64, 128)).map(([a, b, m]) => `2001:db8:${a}:${b.toString(16)}::${a + 1}/${m}`);
    const client = fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map(([a, b, c]) => `10.${a}.${b}.${c}`),
      fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 9 })).map(([a, b, c]) => `2001:db8:${a}:${b.toString(16)}::${c}`),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.oneof(v4, v6), fc.integer({ min: 1, max: 100 })), { maxLength: 60 }), fc.array(client, { maxLength: 30 }), fc.integer({ min: 0, max: 100 }), (bans, clients, later) => {
        const clock = new ManualClock(T0);
        const list = new BanList(clock);
        for (const [p, minutes] of bans) list.put({ prefix: normalizeBanPrefix(p)!.prefix, since: T0, until: T0 + minutes * MIN, policy: 'p', level: 0 });
        clock.advance(later * MIN);
        const active = list.list();
        for (const c of clients) {
          const a = ip(c);
          const want = active
            .filter((b) => clientPrefix(a, normalizeBanPrefix(b.prefix)!.mask) === b.prefix && normalizeBanPrefix(b.prefix)!.family === a.family)
            .sort((x, y) => normalizeBanPrefix(y.prefix)!.mask - normalizeBanPrefix(x.prefix)!.mask)[0];
          expect(list.check(a)?.prefix).toBe(want?.prefix);
        }
      }),
      { numRuns: 200 },
    );
  });
});
