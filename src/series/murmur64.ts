/**
 * MurmurHash64A (Austin Appleby's MurmurHash2, 64-bit version) exactly as Redis's
 * hyperloglog.c uses it: little-endian 8-byte blocks, seed 0xadc83b19 for HyperLogLog.
 *
 * 64-bit arithmetic runs on 32-bit halves (Math.imul for the low words, an exact 16-bit split
 * for the high word of a 32×32 product), so hashing allocates nothing: the result lands in an
 * `Hash64` the caller owns. Strings are hashed as their UTF-8 bytes (what ioredis sends to
 * PFADD); pure-ASCII strings are read straight from their char codes without encoding.
 */

/** Redis's HyperLogLog seed (`MurmurHash64A(ele, elesize, 0xadc83b19ULL)`). */
export const REDIS_HLL_SEED = 0xadc83b19;

/** A 64-bit value as two unsigned 32-bit halves. */
export interface Hash64 {
  hi: number;
  lo: number;
}

const M_HI = 0xc6a4a793;
const M_LO = 0x5bd1e995;

const M_LO0 = M_LO & 0xffff;
const M_LO1 = M_LO >>> 16;

/** High 32 bits of the unsigned 64-bit product a × M_LO (a unsigned 32-bit). Exact in doubles. */
function mulHiM(a: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const t = a0 * M_LO0; // < 2^32
  const m1 = a1 * M_LO0 + (t >>> 16); // < 2^32
  const m2 = a0 * M_LO1 + (m1 & 0xffff); // < 2^32
  return (a1 * M_LO1 + (m1 >>> 16) + (m2 >>> 16)) >>> 0;
}

/*
 * Every 64-bit product below is (hi, lo) × m written out in place:
 *   hi' = mulHiM(lo) + lo × M_HI + hi × M_LO  (mod 2^32),  lo' = lo × M_LO (mod 2^32)
 * with all state in locals: module-level or object fields holding uint32 values ≥ 2^31 would be
 * boxed as heap numbers on every write (the first version of this file spent 1 µs per hash so).
 */

/** MurmurHash64A of `bytes[0, len)`. */
export function murmur64Bytes(bytes: Uint8Array, len: number, seed: number, out: Hash64): Hash64 {
  // h = seed ^ (len * m)
  let hHi = (mulHiM(len) + Math.imul(len, M_HI)) >>> 0;
  let hLo = ((Math.imul(len, M_LO) >>> 0) ^ (seed >>> 0)) >>> 0;
  const end = len - (len & 7);
  let i = 0;
  for (; i < end; i += 8) {
    let kLo = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0;
    let kHi = (bytes[i + 4]! | (bytes[i + 5]! << 8) | (bytes[i + 6]! << 16) | (bytes[i + 7]! << 24)) >>> 0;
    // k *= m
    let nHi = (mulHiM(kLo) + Math.imul(kLo, M_HI) + Math.imul(kHi, M_LO)) >>> 0;
    kLo = Math.imul(kLo, M_LO) >>> 0;
    kHi = nHi;
    // k ^= k >> 47
    kLo = (kLo ^ (kHi >>> 15)) >>> 0;
    // k *= m
    nHi = (mulHiM(kLo) + Math.imul(kLo, M_HI) + Math.imul(kHi, M_LO)) >>> 0;
    kLo = Math.imul(kLo, M_LO) >>> 0;
    kHi = nHi;
    // h ^= k; h *= m
    hHi = (hHi ^ kHi) >>> 0;
    hLo = (hLo ^ kLo) >>> 0;
    nHi = (mulHiM(hLo) + Math.imul(hLo, M_HI) + Math.imul(hHi, M_LO)) >>> 0;
    hLo = Math.imul(hLo, M_LO) >>> 0;
    hHi = nHi;
  }
  const rest = len & 7;
  if (rest > 0) {
    let t0 = 0;
    let t4 = 0;
    for (let j = rest - 1; j >= 0; j--) {
      const b = bytes[i + j]!;
      if (j >= 4) t4 |= b << (8 * (j - 4));
      else t0 |= b << (8 * j);
    }
    hHi = (hHi ^ t4) >>> 0;
    hLo = (hLo ^ t0) >>> 0;
    const nHi = (mulHiM(hLo) + Math.imul(hLo, M_HI) + Math.imul(hHi, M_LO)) >>> 0;
    hLo = Math.imul(hLo, M_LO) >>> 0;
    hHi = nHi;
  }
  // h ^= h >> 47; h *= m; h ^= h >> 47
  hLo = (hLo ^ (hHi >>> 15)) >>> 0;
  const nHi = (mulHiM(hLo) + Math.imul(hLo, M_HI) + Math.imul(hHi, M_LO)) >>> 0;
  hLo = Math.imul(hLo, M_LO) >>> 0;
  hHi = nHi;
  hLo = (hLo ^ (hHi >>> 15)) >>> 0;
  out.hi = hHi;
  out.lo = hLo;
  return out;
}

let scratch = new Uint8Array(256);
const encoder = new TextEncoder();

/** MurmurHash64A of the UTF-8 bytes of `s` (lone surrogates become U+FFFD, as in Buffer.from). */
export function murmur64String(s: string, seed: number, out: Hash64): Hash64 {
  const n = s.length;
  if (scratch.length < n * 3) scratch = new Uint8Array(Math.max(n * 3, scratch.length * 2));
  const buf = scratch;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return murmur64Bytes(buf, encoder.encodeInto(s, buf).written, seed, out);
    buf[i] = c; // ASCII: the char codes are the UTF-8 bytes
  }
  return murmur64Bytes(buf, n, seed, out);
}

/** The hash as one unsigned 64-bit BigInt (tests, and callers that keep hashes as bigints). */
export function toBigInt(h: Hash64): bigint {
  return (BigInt(h.hi >>> 0) << 32n) | BigInt(h.lo >>> 0);
}

/** Splits an unsigned 64-bit BigInt (taken mod 2^64) into halves. */
export function fromBigInt(v: bigint, out: Hash64 = { hi: 0, lo: 0 }): Hash64 {
  const u = BigInt.asUintN(64, v);
  out.hi = Number(u >> 32n);
  out.lo = Number(u & 0xffffffffn);
  return out;
}
