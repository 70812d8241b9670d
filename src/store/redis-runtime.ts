/**
 * A replicated series as the Redis store works with it (pure: no I/O): its runtime shape, the
 * leaf field an add goes to, a count compiled into a query, and the checks every call makes.
 */
import { InvalidKeyError } from '../errors.js';
import { type Family, applyMask, formatPrefix, parsePrefix, prefixContains } from '../series/address.js';
import { MAX_STRING_KEY_LENGTH } from '../series/string-series.js';
import { checkAddCount, checkWindowRange } from '../series/counts.js';
import { type ReplicatedSeries, leafBitsOf, ttlSeconds } from './redis-layout.js';
import { familyOf } from '../series/types.js';

export interface Runtime {
  spec: ReplicatedSeries;
  family: Family | undefined;
  nwords: number;
  leafBits: number;
  masksText: string;
  ttl: number;
  intervalMs: number;
  /** Counts come from the local memory series (manager, not central). */
  readLocal: boolean;
}

export interface Query {
  rt: Runtime;
  /** 'l': a stored key (leaf field); 'a': a prefix shorter than the stored key. */
  kind: 'l' | 'a';
  field: string;
  mask: number;
  words: Uint32Array | undefined;
  startv: number;
  last: number;
}

/** The runtime of a series spec: masks cleaned up (always /0 for cidr types), key TTL, where counts come from. */
export function runtimeFor(spec: ReplicatedSeries, central: boolean): Runtime {
  const family = familyOf(spec.type);
  const masks = [...new Set(spec.masks)].filter((m) => family === undefined || m < leafBitsOf(spec)).sort((a, b) => a - b);
  if (family !== undefined && !masks.includes(0)) masks.unshift(0);
  return {
    spec: { ...spec, masks },
    family,
    nwords: family === 6 ? 4 : 1,
    leafBits: leafBitsOf(spec),
    masksText: family === undefined ? '' : masks.join(','),
    ttl: ttlSeconds(spec),
    intervalMs: spec.interval * 1000,
    readLocal: spec.replicate === 'manager' && !central,
  };
}

/** The leaf field (and words) an add of `key` goes to; null for an address of the other family. */
export function leafOf(rt: Runtime, key: string): { field: string; words: Uint32Array | undefined } | null {
  if (rt.family === undefined) {
    checkStringKey(rt, key);
    return { field: key, words: undefined };
  }
  const p = parsePrefix(key);
  if (!p) throw new InvalidKeyError(`series "${rt.spec.name}": "${key}" is not an IP address or CIDR prefix`);
  if (p.family !== rt.family) return null;
  if (p.mask < rt.leafBits) throw new InvalidKeyError(`series "${rt.spec.name}": add takes an address, not the prefix "${key}"`);
  applyMask(p.words, rt.family, rt.leafBits);
  return { field: formatPrefix(rt.family, p.words, rt.leafBits), words: p.words };
}

/** Validates a count query; null when it is 0 by construction (other family, empty range). */
export function compileQuery(rt: Runtime, key: string, startv: number, endv: number): Query | null {
  const last = checkRange(rt, startv, endv);
  if (rt.family === undefined) {
    checkStringKey(rt, key);
    return startv > last ? null : { rt, kind: 'l', field: key, mask: 0, words: undefined, startv, last };
  }
  const p = parsePrefix(key);
  if (!p) throw new InvalidKeyError(`series "${rt.spec.name}": "${key}" is not an IP address or CIDR prefix`);
  if (p.family !== rt.family || startv > last) return null;
  if (p.mask >= rt.leafBits) {
    applyMask(p.words, rt.family, rt.leafBits);
    return { rt, kind: 'l', field: formatPrefix(rt.family, p.words, rt.leafBits), mask: rt.leafBits, words: p.words, startv, last };
  }
  return { rt, kind: 'a', field: formatPrefix(rt.family, p.words, p.mask), mask: p.mask, words: p.words, startv, last };
}

/** The last window a range reads (see checkWindowRange). */
export function checkRange(rt: Runtime, startv: number, endv: number): number {
  return checkWindowRange(rt.spec, startv, endv);
}

export function checkCount(rt: Runtime, count: number): void {
  checkAddCount(rt.spec.name, count);
}

export function checkStringKey(rt: Runtime, key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_STRING_KEY_LENGTH) {
    throw new InvalidKeyError(`series "${rt.spec.name}": a string key must be 1 to ${MAX_STRING_KEY_LENGTH} characters`);
  }
}

/** Sum of the stored keys of one window's leaf hash that match the query. */
export function sumMatching(hash: Map<string, number>, q: Query): number {
  if (q.kind === 'l') return hash.get(q.field) ?? 0;
  let sum = 0;
  for (const [f, c] of hash) {
    const p = parsePrefix(f);
    if (p && prefixContains(q.words!, q.mask, p.words, q.rt.leafBits, q.rt.nwords)) sum += c;
  }
  return sum;
}

/** Sums per stored key, summed again per prefix at `mask` (as they are at the leaf's own length, or for a string series). */
export function sumsAtMask(rt: Runtime, sums: Map<string, number>, mask: number): Map<string, number> {
  if (rt.family === undefined || mask === rt.leafBits) return sums;
  const groups = new Map<string, number>();
  for (const [k, c] of sums) {
    const p = parsePrefix(k);
    if (!p) continue;
    applyMask(p.words, rt.family, mask);
    const g = formatPrefix(rt.family, p.words, mask);
    groups.set(g, (groups.get(g) ?? 0) + c);
  }
  return groups;
}
