/**
 * A set of IPv4 and IPv6 prefixes (CIDRs) with values, answering "which prefix holds this
 * address" with one hash lookup per distinct prefix length present, not a scan of the list:
 * client-list policies, trusted PROXY/XCLIENT peers (and bans and protected networks) use it.
 */
import { applyMask, formatAddress, parsePrefix, type ClientAddress, type Family } from './address.js';

type Key = number | string;

interface FamilyTable<V> {
  /** Prefix lengths present, longest first (a lookup returns the most specific match). */
  lengths: number[];
  byLength: Map<number, Map<Key, V>>;
}

export interface PrefixMatch<V> {
  /** The matching prefix as text (`192.0.2.0/24`, `2001:db8::/32`). */
  prefix: string;
  value: V;
}

/** The lookup key of `words` masked to `mask`: a number while it fits in 53 bits, else text. */
function keyOf(family: Family, words: ArrayLike<number>, mask: number, scratch: Uint32Array): Key {
  if (family === 4) return mask === 0 ? 0 : ((words[0]! & ((0xffffffff << (32 - mask)) >>> 0)) >>> 0);
  scratch[0] = words[0]!;
  scratch[1] = words[1]!;
  scratch[2] = words[2]!;
  scratch[3] = words[3]!;
  applyMask(scratch, 6, mask);
  if (mask <= 32) return scratch[0]!;
  return `${scratch[0]},${scratch[1]},${scratch[2]},${scratch[3]}`;
}

export class PrefixSet<V = true> {
  private readonly tables: Record<Family, FamilyTable<V>> = {
    4: { lengths: [], byLength: new Map() },
    6: { lengths: [], byLength: new Map() },
  };
  private readonly scratch = new Uint32Array(4);
  private count = 0;

  /** A set of the CIDRs (or bare addresses) in `list`; throws on text that is not one. */
  static of(list: readonly string[]): PrefixSet<true> {
    const set = new PrefixSet<true>();
    for (const c of list) set.add(c, true);
    return set;
  }

  get size(): number {
    return this.count;
  }

  /** Adds (or replaces) a prefix; returns its normalized text. */
  add(cidr: string, value: V): string {
    const p = parsePrefix(cidr);
    if (!p) throw new TypeError(`"${cidr}" is not an address or CIDR prefix`);
    const t = this.tables[p.family];
    let m = t.byLength.get(p.mask);
    if (!m) {
      t.byLength.set(p.mask, (m = new Map()));
      t.lengths = [...t.byLength.keys()].sort((a, b) => b - a);
    }
    const k = keyOf(p.family, p.words, p.mask, this.scratch);
    if (!m.has(k)) this.count++;
    m.set(k, value);
    return `${formatAddress(p.family, p.words)}/${p.mask}`;
  }

  /** Removes a prefix (exactly that one); true when it was there. */
  delete(cidr: string): boolean {
    const p = parsePrefix(cidr);
    if (!p) return false;
    const t = this.tables[p.family];
    const m = t.byLength.get(p.mask);
    if (!m || !m.delete(keyOf(p.family, p.words, p.mask, this.scratch))) return false;
    this.count--;
    if (m.size === 0) {
      t.byLength.delete(p.mask);
      t.lengths = [...t.byLength.keys()].sort((a, b) => b - a);
    }
    return true;
  }

  /** The most specific prefix holding `addr`, or undefined. */
  match(addr: ClientAddress | undefined): PrefixMatch<V> | undefined {
    if (!addr) return undefined;
    const t = this.tables[addr.family];
    for (const len of t.lengths) {
      const v = t.byLength.get(len)!.get(keyOf(addr.family, addr.words, len, this.scratch));
      if (v !== undefined) {
        const w = new Uint32Array(4);
        w.set(addr.words);
        applyMask(w, addr.family, len);
        return { prefix: `${formatAddress(addr.family, w)}/${len}`, value: v };
      }
    }
    return undefined;
  }

  /**
   * The value of the most specific prefix holding `addr` that `accept` takes (bans skip expired
   * entries this way), or undefined. One hash lookup per prefix length present, no allocation.
   */
  find(addr: ClientAddress | undefined, accept: (value: V) => boolean): V | undefined {
    if (!addr) return undefined;
    const t = this.tables[addr.family];
    for (const len of t.lengths) {
      const v = t.byLength.get(len)!.get(keyOf(addr.family, addr.words, len, this.scratch));
      if (v !== undefined && accept(v)) return v;
    }
    return undefined;
  }

  /** The value stored for exactly this prefix (no covering prefix), or undefined. */
  get(cidr: string): V | undefined {
    const p = parsePrefix(cidr);
    if (!p) return undefined;
    return this.tables[p.family].byLength.get(p.mask)?.get(keyOf(p.family, p.words, p.mask, this.scratch));
  }

  /** True when some prefix holds `addr`. */
  has(addr: ClientAddress | undefined): boolean {
    if (!addr) return false;
    const t = this.tables[addr.family];
    for (const len of t.lengths) if (t.byLength.get(len)!.has(keyOf(addr.family, addr.words, len, this.scratch))) return true;
    return false;
  }
}
