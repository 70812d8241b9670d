/**
 * Address → key: the one pure, typed function that turns client addresses and CIDR
 * query strings into fixed-width words. IPv4 is one 32-bit word; IPv6 is four.
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) folds to IPv4 by its address bits.
 */
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface ParsedPrefix {
  family: Family;
  /** Network bits, host bits beyond `mask` cleared. One word for IPv4, four for IPv6. */
  words: Uint32Array;
  mask: number;
  /** True when the input carried an explicit /mask. */
  explicitMask: boolean;
}

export const FAMILY_BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** Strict dotted quad (no leading zeros, no octal, no shorthand): the hot path for IPv4 clients. */
export function parseIPv4Fast(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
      if (dots > 3) return -1;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/**
 * Parses one address (no mask) into `out` (length ≥ 4). Returns the family, or 0 when the
 * text is not an address. Accepts [bracketed] IPv6; refuses zone ids.
 */
export function parseAddressInto(text: string, out: Uint32Array): Family | 0 {
  const fast = parseIPv4Fast(text);
  if (fast >= 0) {
    out[0] = fast;
    return 4;
  }
  let s = text;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s.includes('%')) return 0;
  if (s.includes(':')) {
    let v6: ipaddr.IPv6;
    try {
      v6 = ipaddr.IPv6.parse(s); // one parse (isValid would be a second)
    } catch {
      return 0;
    }
    if (v6.isIPv4MappedAddress()) {
      const b = v6.toIPv4Address().octets;
      out[0] = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
      return 4;
    }
    const p = v6.parts; // eight 16-bit parts
    for (let i = 0; i < 4; i++) out[i] = ((p[2 * i]! << 16) | p[2 * i + 1]!) >>> 0;
    return 6;
  }
  return 0;
}

/** Clears every bit past `mask` in place. */
export function applyMask(words: Uint32Array, family: Family, mask: number): void {
  const nwords = family === 4 ? 1 : 4;
  for (let i = 0; i < nwords; i++) {
    const bitsBefore = i * 32;
    const keep = mask - bitsBefore;
    if (keep >= 32) continue;
    if (keep <= 0) words[i] = 0;
    else words[i] = (words[i]! & (0xffffffff << (32 - keep))) >>> 0;
  }
}

function parseMask(text: string, max: number): number {
  if (!/^\d{1,3}$/.test(text)) return -1;
  const m = Number(text);
  return m <= max ? m : -1;
}

/**
 * Parses `ip` or `ip/mask`. For an IPv4-mapped address with a mask, the mask is
 * taken on the IPv6 scale and converted (::ffff:192.0.2.0/120 is 192.0.2.0/24).
 * Returns null for garbage.
 */
export function parsePrefix(text: string): ParsedPrefix | null {
  const slash = text.indexOf('/');
  const words = new Uint32Array(4);
  if (slash < 0) {
    const family = parseAddressInto(text, words);
    if (family === 0) return null;
    return { family, words, mask: FAMILY_BITS[family], explicitMask: false };
  }
  const addr = text.slice(0, slash);
  const maskText = text.slice(slash + 1);
  const family = parseAddressInto(addr, words);
  if (family === 0) return null;
  const textIsV6 = addr.includes(':');
  let mask = parseMask(maskText, textIsV6 ? 128 : 32);
  if (mask < 0) return null;
  if (family === 4 && textIsV6) {
    if (mask < 96) return null;
    mask -= 96;
  }
  applyMask(words, family, mask);
  return { family, words, mask, explicitMask: true };
}

/** Formats the first words of a prefix as text: `a.b.c.d` or IPv6 in RFC 5952 form. */
export function formatAddress(family: Family, words: ArrayLike<number>): string {
  if (family === 4) {
    const w = words[0]!;
    return `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`;
  }
  return formatIPv6(words);
}

/**
 * IPv6 in RFC 5952 form (what ipaddr.js's toRFC5952String writes, without its regular
 * expressions: this runs for every client): lower-case hex without leading zeros, the first
 * longest run of two or more zero groups as `::`.
 */
function formatIPv6(words: ArrayLike<number>): string {
  const g = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    g[2 * i] = words[i]! >>> 16;
    g[2 * i + 1] = words[i]! & 0xffff;
  }
  let best = -1;
  let bestLen = 1; // a single zero group is not shortened
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string => g.slice(from, to).map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

export function formatPrefix(family: Family, words: ArrayLike<number>, mask: number): string {
  const a = formatAddress(family, words);
  return mask === FAMILY_BITS[family] ? a : `${a}/${mask}`;
}

/** Normalizes a client address for logs and keys: mapped IPv6 becomes IPv4. Null for garbage. */
export function normalizeAddress(text: string): { family: Family; address: string } | null {
  const words = new Uint32Array(4);
  const family = parseAddressInto(text, words);
  if (family === 0) return null;
  return { family, address: formatAddress(family, words) };
}

/** True when prefix `inner` (words, innerMask) lies within `outer` (words, outerMask). */
export function prefixContains(
  outerWords: ArrayLike<number>,
  outerMask: number,
  innerWords: ArrayLike<number>,
  innerMask: number,
  nwords: number,
): boolean {
  if (innerMask < outerMask) return false;
  for (let i = 0; i < nwords; i++) {
    const keep = outerMask - i * 32;
    if (keep <= 0) return true;
    const m = keep >= 32 ? 0xffffffff : (0xffffffff << (32 - keep)) >>> 0;
    if (((innerWords[i]! & m) >>> 0) !== ((outerWords[i]! & m) >>> 0)) return false;
  }
  return true;
}

/**
 * A client's address, parsed once at a front's edge and carried as a typed value from there:
 * the session gauge, client-list matchers, policy evaluation and series adds read its words and
 * family instead of parsing the text again. IPv4-mapped IPv6 is IPv4.
 */
export interface ClientAddress {
  /** Normalized text: dotted quad, or IPv6 in RFC 5952 form. */
  readonly text: string;
  readonly family: Family;
  /** The address bits: one word for IPv4, four for IPv6. */
  readonly words: Uint32Array;
}

/** Parses a client address (no mask); undefined for anything that is not one. */
export function parseClientAddress(raw: string | undefined): ClientAddress | undefined {
  if (raw === undefined || raw === '') return undefined;
  const words = new Uint32Array(4);
  const family = parseAddressInto(raw, words);
  if (family === 0) return undefined;
  return { text: formatAddress(family, words), family, words: family === 4 ? words.subarray(0, 1) : words };
}
