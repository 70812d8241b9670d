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

/** High 32 bits of the unsigned 64-bit product a × b (a, b unsigned 32-bit). Exact. */
function mulHi32(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const t = a0 * b0; // < 2^32
  const m1 = a1 * b0 + (t >>> 16); // < 2^32
  const m2 = a0 * b1 + (m1 & 0xffff); // < 2^32
  return (a1 * b1 + (m1 >>> 16) + (m2 >>> 16)) >>> 0;
}

// The running state of one hash (module-level: hashing is synchronous and never re-entered).
let hHi = 0;
let hLo = 0;

/** h *= m (mod 2^64). */
function mulM(): void {
  const lo = hLo;
  const hi = hHi;
  hHi = (mulHi32(lo, M_LO) + Math.imul(lo, M_HI) + Math.imul(hi, M_LO)) >>> 0;
  hLo = Math.imul(lo, M_LO) >>> 0;
}

/** Mixes one 8-byte block k = (kHi, kLo): k *= m; k ^= k >> 47; k *= m; h ^= k; h *= m. */
function block(kHi: number, kLo: number): void {
  let hi = (mulHi32(kLo, M_LO) + Math.imul(kLo, M_HI) + Math.imul(kHi, M_LO)) >>> 0;
  let lo = Math.imul(kLo, M_LO) >>> 0;
  lo = (lo ^ (hi >>> 15)) >>> 0;
  const hi2 = (mulHi32(lo, M_LO) + Math.imul(lo, M_HI) + Math.imul(hi, M_LO)) >>> 0;
  lo = Math.imul(lo, M_LO) >>> 0;
  hi = hi2;
  hHi = (hHi ^ hi) >>> 0;
  hLo = (hLo ^ lo) >>> 0;
  mulM();
}

function start(len: number, seed: number): void {
  // h = seed ^ (len * m)
  hHi = (mulHi32(len, M_LO) + Math.imul(len, M_HI)) >>> 0;
  hLo = ((Math.imul(len, M_LO) >>> 0) ^ (seed >>> 0)) >>> 0;
}

function tail(t4: number, t0: number, rest: number): void {
  if (rest > 0) {
    hHi = (hHi ^ t4) >>> 0;
    hLo = (hLo ^ t0) >>> 0;
    mulM();
  }
}

function finish(out: Hash64): Hash64 {
  hLo = (hLo ^ (hHi >>> 15)) >>> 0;
  mulM();
  hLo = (hLo ^ (hHi >>> 15)) >>> 0;
  out.hi = hHi;
  out.lo = hLo;
  return out;
}

/** MurmurHash64A of `bytes[0, len)`. */
export function murmur64Bytes(bytes: Uint8Array, len: number, seed: number, out: Hash64): Hash64 {
  start(len, seed);
  const end = len - (len & 7);
  let i = 0;
  for (; i < end; i += 8) {
    const lo = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0;
    const hi = (bytes[i + 4]! | (bytes[i + 5]! << 8) | (bytes[i + 6]! << 16) | (bytes[i + 7]! << 24)) >>> 0;
    block(hi, lo);
  }
  const rest = len & 7;
  let t0 = 0;
  let t4 = 0;
  for (let j = rest - 1; j >= 0; j--) {
    const b = bytes[i + j]!;
    if (j >= 4) t4 |= b << (8 * (j - 4));
    else t0 |= b << (8 * j);
  }
  tail(t4 >>> 0, t0 >>> 0, rest);
  return finish(out);
}

/** MurmurHash64A of an ASCII string's char codes (the caller checked every code < 0x80). */
function murmur64Ascii(s: string, seed: number, out: Hash64): Hash64 {
  const len = s.length;
  start(len, seed);
  const end = len - (len & 7);
  let i = 0;
  for (; i < end; i += 8) {
    const lo = (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24)) >>> 0;
    const hi = (s.charCodeAt(i + 4) | (s.charCodeAt(i + 5) << 8) | (s.charCodeAt(i + 6) << 16) | (s.charCodeAt(i + 7) << 24)) >>> 0;
    block(hi, lo);
  }
  const rest = len & 7;
  let t0 = 0;
  let t4 = 0;
  for (let j = rest - 1; j >= 0; j--) {
    const b = s.charCodeAt(i + j);
    if (j >= 4) t4 |= b << (8 * (j - 4));
    else t0 |= b << (8 * j);
  }
  tail(t4 >>> 0, t0 >>> 0, rest);
  return finish(out);
}

let scratch = new Uint8Array(256);
const encoder = new TextEncoder();

/** MurmurHash64A of the UTF-8 bytes of `s` (lone surrogates become U+FFFD, as in Buffer.from). */
export function murmur64String(s: string, seed: number, out: Hash64): Hash64 {
  const n = s.length;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return murmur64Ascii(s, seed, out);
  if (scratch.length < n * 3) scratch = new Uint8Array(Math.max(n * 3, scratch.length * 2));
  const { written } = encoder.encodeInto(s, scratch);
  return murmur64Bytes(scratch, written, seed, out);
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
