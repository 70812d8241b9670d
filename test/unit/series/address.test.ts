import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { formatAddress, formatPrefix, normalizeAddress, parseClientAddress, parseIPv4Fast, parsePrefix, prefixContains } from '../../../src/series/address.js';

describe('address → key', () => {
  it('parses strict dotted quads on the fast path', () => {
    expect(parseIPv4Fast('192.0.2.1')).toBe(0xc0000201);
    expect(parseIPv4Fast('0.0.0.0')).toBe(0);
    expect(parseIPv4Fast('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1..2.3', 'a.b.c.d', '1.2.3.4 ', '']) {
      expect(parseIPv4Fast(bad), bad).toBe(-1);
    }
  });

  it('parses IPv4, IPv6 and prefixes, clearing host bits', () => {
    const p = parsePrefix('192.0.2.77/24')!;
    expect(p.family).toBe(4);
    expect(p.mask).toBe(24);
    expect(formatPrefix(4, p.words, p.mask)).toBe('192.0.2.0/24');
    const q = parsePrefix('2001:db8:1:2:3:4:5:6/48')!;
    expect(q.family).toBe(6);
    expect(formatPrefix(6, q.words, q.mask)).toBe('2001:db8:1::/48');
    expect(formatPrefix(6, parsePrefix('[2001:db8::1]')!.words, 128)).toBe('2001:db8::1');
  });

  it('folds IPv4-mapped IPv6 to IPv4 by the address bits', () => {
    const p = parsePrefix('::ffff:192.0.2.1')!;
    expect(p.family).toBe(4);
    expect(p.words[0]).toBe(0xc0000201);
    const q = parsePrefix('::ffff:c000:0201')!;
    expect(q.family).toBe(4);
    expect(q.words[0]).toBe(0xc0000201);
    const r = parsePrefix('::ffff:192.0.2.0/120')!;
    expect(r.family).toBe(4);
    expect(r.mask).toBe(24);
    expect(parsePrefix('::ffff:192.0.2.0/64')).toBeNull();
    expect(normalizeAddress('::ffff:10.1.2.3')).toEqual({ family: 4, address: '10.1.2.3' });
  });

  it('refuses garbage', () => {
    for (const bad of ['', 'localhost', '192.0.2.1/33', '2001:db8::/129', '192.0.2.1/', '/24', 'fe80::1%eth0', '1.2.3.4/x', ':::']) {
      expect(parsePrefix(bad), bad).toBeNull();
    }
  });

  it('tests containment across words', () => {
    const outer = parsePrefix('2001:db8::/32')!;
    const inner = parsePrefix('2001:db8:ffff::1')!;
    const other = parsePrefix('2001:db9::1')!;
    expect(prefixContains(outer.words, 32, inner.words, 128, 4)).toBe(true);
    expect(prefixContains(outer.words, 32, other.words, 128, 4)).toBe(false);
    expect(prefixContains(outer.words, 0, other.words, 128, 4)).toBe(true);
  });

  it('writes IPv6 as ipaddr.js writes RFC 5952, and reads it back', () => {
    // groups mostly zero, so runs of zeros of every length and position come up
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (g) => {
        const words = [0, 1, 2, 3].map((i) => ((g[2 * i]! << 16) | g[2 * i + 1]!) >>> 0);
        const text = formatAddress(6, words);
        expect(text).toBe(new ipaddr.IPv6(g).toRFC5952String());
        const back = parseClientAddress(text);
        if (back?.family === 6) expect([...back.words]).toEqual(words);
        else expect(text.startsWith('::ffff:')).toBe(true); // IPv4-mapped: read as IPv4
      }),
      { numRuns: 3000 },
    );
    expect(formatAddress(6, [0x20010db8, 0, 0, 1])).toBe('2001:db8::1');
    expect(formatAddress(6, [0x20010db8, 1, 1, 1])).toBe('2001:db8:0:1:0:1:0:1'); // single zero groups stay
    expect(formatAddress(6, [0x20010000, 1, 0, 0x10000])).toBe('2001::1:0:0:1:0'); // a tie: the first run
  });

  it('refuses what is not an IPv6 address', () => {
    for (const bad of ['2001:db8:::1', '2001:db8::g', '1:2:3:4:5:6:7:8:9', 'fe80::1%eth0', ':', '::1::']) expect(parseClientAddress(bad), bad).toBeUndefined();
  });
});
