/**
 * Redis's HyperLogLog, register for register: P = 14 (16,384 six-bit registers), the register
 * index is the low 14 bits of MurmurHash64A(value, seed 0xadc83b19), its value the position of
 * the lowest set bit above them (bit 14 counts 1; a sentinel bit caps it at 51), and the count
 * is Ertl's "new" estimator (hllSigma / hllTau, Redis ≥ 5) computed the way hyperloglog.c
 * computes it, in doubles, in the same order. Same registers ⇒ the same count as PFCOUNT.
 *
 * Also here: the packed dense layout (Redis's, 12,288 bytes), Redis's serialized string
 * (the "HYLL" header, dense or sparse ZERO/XZERO/VAL opcodes) and a union counter that counts
 * a union without building a sketch for it.
 */
import { SnapshotError } from '../errors.js';

export const HLL_P = 14;
export const HLL_Q = 64 - HLL_P; // 50 hash bits above the index
export const HLL_REGISTERS = 1 << HLL_P; // 16,384
export const HLL_INDEX_MASK = HLL_REGISTERS - 1;
/** Highest value a register reaches from a hash (Q + 1). Decoded strings may hold up to 63. */
export const HLL_RANK_MAX = HLL_Q + 1;
export const HLL_DENSE_BYTES = (HLL_REGISTERS * 6) / 8; // 12,288
export const HLL_HEADER_BYTES = 16;
/** Redis's default `hll-sparse-max-bytes`: past it Redis keeps a key dense, and so do we. */
export const REDIS_SPARSE_MAX_BYTES = 3000;
/** Relative standard error of an HLL with 16,384 registers: 1.04 / √16384. */
export const HLL_STANDARD_ERROR = 1.04 / Math.sqrt(HLL_REGISTERS);

/** HLL_ALPHA_INF = 0.721347520444481703680 (0.5 / ln 2); this literal is the same double. */
const ALPHA_INF = 0.7213475204444817;
const ENC_DENSE = 0;
const ENC_SPARSE = 1;

/** Register value (1..51) for a hash's halves: trailing zeros of (hash >> 14 | 1 << 50), plus one. */
export function registerRank(hi: number, lo: number): number {
  const w = lo >>> 14;
  if (w !== 0) return 32 - Math.clz32(w & -w);
  if (hi !== 0) return 50 - Math.clz32(hi & -hi);
  return HLL_RANK_MAX;
}

// ---- packed dense registers (Redis's layout: 6 bits each, LSB first) ----------------------------

/** A zeroed dense register array; one pad byte so the last register reads like the others. */
export function newDense(): Uint8Array {
  return new Uint8Array(HLL_DENSE_BYTES + 1);
}

export function denseGet(regs: Uint8Array, i: number): number {
  const bit = i * 6;
  const byte = bit >>> 3;
  const fb = bit & 7;
  return ((regs[byte]! >>> fb) | (regs[byte + 1]! << (8 - fb))) & 63;
}

export function denseSet(regs: Uint8Array, i: number, v: number): void {
  const bit = i * 6;
  const byte = bit >>> 3;
  const fb = bit & 7;
  regs[byte] = (regs[byte]! & ~(63 << fb)) | (v << fb);
  regs[byte + 1] = (regs[byte + 1]! & ~(63 >>> (8 - fb))) | (v >>> (8 - fb));
}

/** Unpacks all 16,384 registers into one byte each (four registers per three bytes). */
export function unpackDense(regs: Uint8Array, out: Uint8Array): Uint8Array {
  for (let i = 0, b = 0; i < HLL_REGISTERS; i += 4, b += 3) {
    const b0 = regs[b]!;
    const b1 = regs[b + 1]!;
    const b2 = regs[b + 2]!;
    out[i] = b0 & 63;
    out[i + 1] = (b0 >>> 6) | ((b1 & 15) << 2);
    out[i + 2] = (b1 >>> 4) | ((b2 & 3) << 4);
    out[i + 3] = b2 >>> 2;
  }
  return out;
}

/** Packs one byte per register (each < 64) into the dense layout. */
export function packDense(bytes: Uint8Array, out: Uint8Array): Uint8Array {
  for (let i = 0, b = 0; i < HLL_REGISTERS; i += 4, b += 3) {
    const r0 = bytes[i]!;
    const r1 = bytes[i + 1]!;
    const r2 = bytes[i + 2]!;
    const r3 = bytes[i + 3]!;
    out[b] = r0 | (r1 << 6);
    out[b + 1] = (r1 >>> 2) | (r2 << 4);
    out[b + 2] = (r2 >>> 4) | (r3 << 2);
  }
  return out;
}

/**
 * Register-wise max of two sparse lists (`index << 6 | value`, ascending) into `out` (room for
 * na + nb entries); returns the entries written.
 */
export function mergeSparse(a: Uint32Array, na: number, b: Uint32Array, nb: number, out: Uint32Array): number {
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < na || j < nb) {
    const x = i < na ? a[i]! : 0xffffffff;
    const y = j < nb ? b[j]! : 0xffffffff;
    if (x >>> 6 === y >>> 6) {
      out[o++] = Math.max(x, y);
      i++;
      j++;
    } else if (x < y) {
      out[o++] = x;
      i++;
    } else {
      out[o++] = y;
      j++;
    }
  }
  return o;
}

// ---- the estimator -----------------------------------------------------------------------------

/** hllSigma from hyperloglog.c (Ertl, arXiv:1702.01284). */
export function hllSigma(x: number): number {
  if (x === 1) return Infinity;
  let zPrime: number;
  let y = 1;
  let z = x;
  do {
    x *= x;
    zPrime = z;
    z += x * y;
    y += y;
  } while (zPrime !== z);
  return z;
}

/** hllTau from hyperloglog.c; `pow(1 - x, 2)` is a correctly rounded square, so is `d * d`. */
export function hllTau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let zPrime: number;
  let y = 1.0;
  let z = 1 - x;
  do {
    x = Math.sqrt(x);
    zPrime = z;
    y *= 0.5;
    const d = 1 - x;
    z -= d * d * y;
  } while (zPrime !== z);
  return z / 3;
}

/**
 * Cardinality from a register histogram (histo[v] = registers holding v; 52 entries used,
 * values above 51 are ignored as Redis ignores them), exactly as hllCount().
 */
export function estimateFromHistogram(histo: ArrayLike<number>): number {
  const m = HLL_REGISTERS;
  let z = m * hllTau((m - histo[HLL_Q + 1]!) / m);
  for (let j = HLL_Q; j >= 1; --j) {
    z += histo[j]!;
    z *= 0.5;
  }
  z += m * hllSigma(histo[0]! / m);
  const e = Math.round((ALPHA_INF * m * m) / z); // llroundl: half away from zero; E ≥ 0
  // Every register at 51 (z = 0) is out of reach of real data; Redis's llroundl(inf) is undefined.
  return e <= Number.MAX_SAFE_INTEGER ? e : Number.MAX_SAFE_INTEGER;
}

// ---- Redis's serialized string ------------------------------------------------------------------

/**
 * Encodes registers as Redis stores them. `sparse` holds the non-zero registers as
 * `index << 6 | value`, ascending by index; or pass `dense` (packed). The cached cardinality is
 * written invalid (MSB of its last byte set), so Redis computes the count itself on first use.
 * Sparse when Redis would keep it sparse (every value ≤ 32, ≤ hll-sparse-max-bytes), else dense.
 */
export function encodeRedis(src: { sparse: Uint32Array; n: number } | { dense: Uint8Array }): Buffer {
  if ('sparse' in src) {
    const body = encodeSparseBody(src.sparse, src.n);
    if (body) {
      const out = Buffer.alloc(HLL_HEADER_BYTES + body.length);
      writeHeader(out, ENC_SPARSE);
      out.set(body, HLL_HEADER_BYTES);
      return out;
    }
    const dense = newDense();
    for (let k = 0; k < src.n; k++) denseSet(dense, src.sparse[k]! >>> 6, src.sparse[k]! & 63);
    return encodeRedis({ dense });
  }
  const out = Buffer.alloc(HLL_HEADER_BYTES + HLL_DENSE_BYTES);
  writeHeader(out, ENC_DENSE);
  out.set(src.dense.subarray(0, HLL_DENSE_BYTES), HLL_HEADER_BYTES);
  return out;
}

function writeHeader(out: Buffer, encoding: number): void {
  out.write('HYLL', 0, 'latin1');
  out[4] = encoding;
  out[15] = 0x80; // cached cardinality invalid
}

/** Sparse opcodes for the registers, or undefined when Redis would not keep them sparse. */
function encodeSparseBody(sparse: Uint32Array, n: number): Uint8Array | undefined {
  const out = new Uint8Array(Math.min(3 * n + 4, REDIS_SPARSE_MAX_BYTES + 4));
  let o = 0;
  let pos = 0;
  const zeros = (len: number): boolean => {
    while (len > 0) {
      if (o + 2 > out.length) return false;
      if (len > 64) {
        const l = Math.min(len, HLL_REGISTERS);
        out[o++] = 0x40 | ((l - 1) >>> 8);
        out[o++] = (l - 1) & 0xff;
        len -= l;
      } else {
        out[o++] = len - 1;
        len = 0;
      }
    }
    return true;
  };
  for (let k = 0; k < n; ) {
    const idx = sparse[k]! >>> 6;
    const v = sparse[k]! & 63;
    if (v > 32) return undefined;
    if (!zeros(idx - pos)) return undefined;
    let len = 1;
    while (len < 4 && k + len < n && sparse[k + len]! === (((idx + len) << 6) | v)) len++;
    if (o >= out.length) return undefined;
    out[o++] = 0x80 | ((v - 1) << 2) | (len - 1);
    pos = idx + len;
    k += len;
  }
  if (!zeros(HLL_REGISTERS - pos) || o > REDIS_SPARSE_MAX_BYTES) return undefined;
  return out.subarray(0, o);
}

/**
 * Decodes a Redis HLL string (what GET returns for a PFADD key) into one byte per register.
 * Throws SnapshotError for anything Redis itself would call an invalid HyperLogLog.
 */
export function decodeRedis(buf: Uint8Array): Uint8Array {
  const bad = (why: string): never => {
    throw new SnapshotError(`not a Redis HyperLogLog string: ${why}`);
  };
  if (buf.length < HLL_HEADER_BYTES) bad('shorter than the 16-byte header');
  if (buf[0] !== 0x48 || buf[1] !== 0x59 || buf[2] !== 0x4c || buf[3] !== 0x4c) bad('no "HYLL" magic');
  const regs = new Uint8Array(HLL_REGISTERS);
  const enc = buf[4];
  if (enc === ENC_DENSE) {
    if (buf.length !== HLL_HEADER_BYTES + HLL_DENSE_BYTES) bad(`dense string of ${buf.length} bytes`);
    const body = new Uint8Array(HLL_DENSE_BYTES + 1);
    body.set(buf.subarray(HLL_HEADER_BYTES));
    for (let i = 0; i < HLL_REGISTERS; i++) regs[i] = denseGet(body, i);
    return regs;
  }
  if (enc !== ENC_SPARSE) bad(`unknown encoding ${enc}`);
  let idx = 0;
  for (let p = HLL_HEADER_BYTES; p < buf.length; ) {
    const b = buf[p]!;
    let len: number;
    if ((b & 0xc0) === 0) {
      len = (b & 0x3f) + 1;
      p++;
    } else if ((b & 0xc0) === 0x40) {
      if (p + 1 >= buf.length) bad('truncated XZERO opcode');
      len = (((b & 0x3f) << 8) | buf[p + 1]!) + 1;
      p += 2;
    } else {
      len = (b & 3) + 1;
      if (idx + len > HLL_REGISTERS) bad('sparse runs past register 16383');
      regs.fill(((b >>> 2) & 0x1f) + 1, idx, idx + len);
      p++;
    }
    idx += len;
    if (idx > HLL_REGISTERS) bad('sparse runs past register 16383');
  }
  if (idx !== HLL_REGISTERS) bad(`sparse runs cover ${idx} registers, not ${HLL_REGISTERS}`);
  return regs;
}
