/**
 * DistinctSketch: the number of distinct values in a set, exact while small, a Redis-compatible
 * HyperLogLog above.
 *
 * Three forms, each smaller than the next for its size:
 * - exact: up to EXACT_MAX (64) values as their 64-bit MurmurHash64A, sorted (hi, lo) pairs in
 *   one Uint32Array. count() is the number of hashes. Two distinct values share a 64-bit hash
 *   with probability about n²/2^65 (≈ 1e-16 at 64 values), so the count is exact for any set
 *   not built on purpose to collide (see "Limits" in the README).
 * - sparse: the non-zero registers as `index << 6 | value`, ascending, up to SPARSE_MAX (2,048
 *   entries, 8 KB), past which
 * - dense: Redis's packed 6-bit registers (12,288 bytes) plus a 64-entry histogram kept as
 *   registers change, so count() never scans 16,384 registers.
 *
 * The hashes of the exact form are the values Redis would hash, so turning them into registers
 * (on the 65th value, for a union, for toRedis) gives exactly the registers PFADD builds: in
 * the sketch forms count() equals PFCOUNT of the same values, and redisCount() gives PFCOUNT's
 * figure in every form. At the switch the count becomes the estimate of 65 values: the same in
 * 87% of sets, one short in 12%, two to four short in 0.7% (register collisions Redis cannot
 * see either); never higher.
 */
import { SnapshotError } from '../errors.js';
import {
  HLL_INDEX_MASK,
  HLL_REGISTERS,
  decodeRedis,
  denseGet,
  denseSet,
  encodeRedis,
  estimateFromHistogram,
  mergeSparse,
  newDense,
  packDense,
  registerRank,
  unpackDense,
} from './hll.js';
import { REDIS_HLL_SEED, fromBigInt, murmur64String, type Hash64 } from './murmur64.js';
import { EXACT_MAX, sharedUnionCounter } from './union-counter.js';

export { EXACT_MAX };
/** Sparse registers kept before the dense form (4 bytes each: 8 KB, against 12 KB dense). */
export const SPARSE_MAX = 2048;

/** A value's hash as a BigInt or as unsigned 32-bit halves [hi, lo]. */
export type HashInput = bigint | readonly [hi: number, lo: number];

/** What feed() writes to: a UnionCounter, or anything that takes hashes and registers. */
export interface UnionSink {
  addHash(hi: number, lo: number): void;
  addRegister(index: number, value: number): void;
  /** Optional fast path for a whole dense register array. */
  addDense?(packed: Uint8Array): void;
}

/** JSON form: the exact hashes (8 bytes each, big-endian) or Redis's HLL string, base64. */
export type DistinctJSON = { v: 1; exact: string } | { v: 1; hll: string };

const EXACT = 0;
const SPARSE = 1;
const DENSE = 2;
const EMPTY32 = new Uint32Array(0);
const EMPTY8 = new Uint8Array(0);
const EMPTY16 = new Uint16Array(0);

const hashOut: Hash64 = { hi: 0, lo: 0 };
const histoScratch = new Int32Array(64);
const unpackA = new Uint8Array(HLL_REGISTERS);
const unpackB = new Uint8Array(HLL_REGISTERS);

/** MurmurHash64A of a value's UTF-8 bytes with Redis's seed: what PFADD hashes. */
export function hashValue(value: string, out: Hash64 = { hi: 0, lo: 0 }): Hash64 {
  return murmur64String(value, REDIS_HLL_SEED, out);
}

export class DistinctSketch {
  private mode = EXACT;
  /** exact: hashes held; sparse: non-zero registers held; dense: unused. */
  private n = 0;
  /** exact: (hi, lo) pairs ascending; sparse: `index << 6 | value` ascending. */
  private words: Uint32Array = EMPTY32;
  private dense: Uint8Array = EMPTY8;
  /** dense: registers per value. */
  private histo: Uint16Array = EMPTY16;
  /** Cached estimate, -1 when stale (sparse and dense). */
  private cached = -1;

  /** Adds a value; true when the sketch changed (false: the count cannot have changed). */
  add(value: string): boolean {
    murmur64String(value, REDIS_HLL_SEED, hashOut);
    return this.addParts(hashOut.hi, hashOut.lo);
  }

  /** Adds a value by its MurmurHash64A (seed 0xadc83b19), e.g. from hashValue(). */
  addHash(h: HashInput): boolean {
    if (typeof h === 'bigint') {
      fromBigInt(h, hashOut);
      return this.addParts(hashOut.hi, hashOut.lo);
    }
    return this.addParts(h[0] >>> 0, h[1] >>> 0);
  }

  /** Adds a hash given as unsigned halves (the hot path: no allocation). */
  addParts(hi: number, lo: number): boolean {
    if (this.mode === EXACT) {
      const at = this.findExact(hi, lo);
      if (at >= 0) return false;
      if (this.n < EXACT_MAX) {
        this.insertExact(~at, hi, lo);
        return true;
      }
      this.toSparse();
    }
    return this.raise(lo & HLL_INDEX_MASK, registerRank(hi, lo));
  }

  /** True while the count is exact (at most EXACT_MAX values, none merged in as registers). */
  get exact(): boolean {
    return this.mode === EXACT;
  }

  /** Distinct values: exact in the exact form, else the HLL estimate (= PFCOUNT). */
  count(): number {
    if (this.mode === EXACT) return this.n;
    if (this.cached < 0) this.cached = estimateFromHistogram(this.mode === DENSE ? this.histo : this.sparseHistogram());
    return this.cached;
  }

  /** What PFCOUNT answers for the same values, in every form (differs from count() only when exact). */
  redisCount(): number {
    if (this.mode !== EXACT) return this.count();
    const regs = this.exactRegisters();
    histoScratch.fill(0);
    histoScratch[0] = HLL_REGISTERS - regs.length;
    for (let k = 0; k < regs.length; k++) histoScratch[regs[k]! & 63]!++;
    return estimateFromHistogram(histoScratch);
  }

  /** Adds every value of `other` (register-wise max once either is a sketch). */
  merge(other: DistinctSketch): void {
    if (other === this) return;
    if (other.mode === EXACT) {
      for (let k = 0; k < other.n; k++) this.addParts(other.words[2 * k]!, other.words[2 * k + 1]!);
      return;
    }
    if (this.mode === EXACT) this.toSparse();
    if (this.mode === SPARSE && (other.mode === DENSE || this.n + other.n > SPARSE_MAX)) this.toDense();
    if (this.mode === DENSE && other.mode === DENSE) {
      this.mergeDense(other.dense);
      return;
    }
    if (this.mode === DENSE) {
      other.forEachRegister((i, v) => this.raise(i, v));
      return;
    }
    const out = new Uint32Array(Math.max(8, this.n + other.n));
    this.n = mergeSparse(this.words, this.n, other.words, other.n, out);
    this.words = out;
    this.cached = -1;
  }

  /** A new sketch holding the union. */
  static union(list: Iterable<DistinctSketch>): DistinctSketch {
    const out = new DistinctSketch();
    for (const s of list) out.merge(s);
    return out;
  }

  /** count() of the union, without building it (a /24 = its addresses, windows 0..3 = 4 sketches). */
  static unionCount(list: Iterable<DistinctSketch>): number {
    const c = sharedUnionCounter;
    c.reset();
    for (const s of list) s.feed(c);
    const n = c.count();
    c.reset();
    return n;
  }

  /** Feeds this set into a union counter (hashes while exact, registers otherwise). */
  feed(c: UnionSink): void {
    if (this.mode === EXACT) {
      for (let k = 0; k < this.n; k++) c.addHash(this.words[2 * k]!, this.words[2 * k + 1]!);
    } else if (this.mode === SPARSE) {
      for (let k = 0; k < this.n; k++) c.addRegister(this.words[k]! >>> 6, this.words[k]! & 63);
    } else if (c.addDense) {
      c.addDense(this.dense);
    } else {
      this.forEachRegister((i, v) => c.addRegister(i, v));
    }
  }

  /** Calls fn for every non-zero register, ascending. */
  forEachRegister(fn: (index: number, value: number) => void): void {
    if (this.mode === DENSE) {
      for (let i = 0; i < HLL_REGISTERS; i++) {
        const v = denseGet(this.dense, i);
        if (v !== 0) fn(i, v);
      }
      return;
    }
    const regs = this.mode === SPARSE ? this.words.subarray(0, this.n) : this.exactRegisters();
    for (let k = 0; k < regs.length; k++) fn(regs[k]! >>> 6, regs[k]! & 63);
  }

  /** Bytes of the typed arrays held (the JS object and array headers, ~250 B in V8, come on top). */
  bytes(): number {
    return this.words.byteLength + this.dense.byteLength + this.histo.byteLength;
  }

  /** Redis's HLL string (SET it, then PFMERGE / PFCOUNT); its cached cardinality is marked stale. */
  toRedis(): Buffer {
    if (this.mode === DENSE) return encodeRedis({ dense: this.dense });
    if (this.mode === SPARSE) return encodeRedis({ sparse: this.words, n: this.n });
    const regs = this.exactRegisters();
    return encodeRedis({ sparse: regs, n: regs.length });
  }

  /** A sketch from Redis's HLL string (GET of a PFADD key). Throws SnapshotError when invalid. */
  static fromRedis(buf: Uint8Array): DistinctSketch {
    const regs = decodeRedis(buf);
    const s = new DistinctSketch();
    let nz = 0;
    for (let i = 0; i < HLL_REGISTERS; i++) if (regs[i] !== 0) nz++;
    if (nz === 0) return s;
    s.toSparse();
    if (nz > SPARSE_MAX) s.toDense();
    for (let i = 0; i < HLL_REGISTERS; i++) if (regs[i] !== 0) s.raise(i, regs[i]!);
    return s;
  }

  toJSON(): DistinctJSON {
    if (this.mode !== EXACT) return { v: 1, hll: this.toRedis().toString('base64') };
    const buf = Buffer.alloc(8 * this.n);
    for (let k = 0; k < this.n; k++) {
      buf.writeUInt32BE(this.words[2 * k]!, 8 * k);
      buf.writeUInt32BE(this.words[2 * k + 1]!, 8 * k + 4);
    }
    return { v: 1, exact: buf.toString('base64') };
  }

  static fromJSON(json: unknown): DistinctSketch {
    const j = json as { v?: unknown; exact?: unknown; hll?: unknown } | null;
    if (!j || typeof j !== 'object' || j.v !== 1) throw new SnapshotError('distinct sketch JSON: unknown shape');
    if (typeof j.hll === 'string') return DistinctSketch.fromRedis(strictBase64(j.hll));
    if (typeof j.exact !== 'string') throw new SnapshotError('distinct sketch JSON: neither "exact" nor "hll"');
    const buf = strictBase64(j.exact);
    if (buf.length % 8 !== 0 || buf.length > 8 * EXACT_MAX) {
      throw new SnapshotError(`distinct sketch JSON: ${buf.length} bytes of exact hashes (need 8 each, at most ${EXACT_MAX})`);
    }
    const s = new DistinctSketch();
    for (let p = 0; p < buf.length; p += 8) s.addParts(buf.readUInt32BE(p), buf.readUInt32BE(p + 4));
    return s;
  }

  // ---- internals ------------------------------------------------------------------------------

  /** Index of the pair (hi, lo) if held, else ~insertion point. */
  private findExact(hi: number, lo: number): number {
    const w = this.words;
    let a = 0;
    let b = this.n;
    while (a < b) {
      const mid = (a + b) >>> 1;
      const mh = w[2 * mid]!;
      if (mh < hi || (mh === hi && w[2 * mid + 1]! < lo)) a = mid + 1;
      else b = mid;
    }
    return a < this.n && w[2 * a] === hi && w[2 * a + 1] === lo ? a : ~a;
  }

  private insertExact(at: number, hi: number, lo: number): void {
    if (2 * this.n === this.words.length) {
      const grown = new Uint32Array(Math.max(8, 2 * this.words.length));
      grown.set(this.words);
      this.words = grown;
    }
    this.words.copyWithin(2 * at + 2, 2 * at, 2 * this.n);
    this.words[2 * at] = hi;
    this.words[2 * at + 1] = lo;
    this.n++;
  }

  /** The exact hashes as registers: ascending `index << 6 | value`, one per index. */
  private exactRegisters(): Uint32Array {
    const out = new Uint32Array(this.n);
    for (let k = 0; k < this.n; k++) {
      const hi = this.words[2 * k]!;
      const lo = this.words[2 * k + 1]!;
      out[k] = ((lo & HLL_INDEX_MASK) << 6) | registerRank(hi, lo);
    }
    out.sort();
    let o = 0; // keep the largest value of each index (the last of its run)
    for (let k = 0; k < out.length; k++) {
      if (k + 1 < out.length && out[k + 1]! >>> 6 === out[k]! >>> 6) continue;
      out[o++] = out[k]!;
    }
    return out.subarray(0, o);
  }

  private toSparse(): void {
    const regs = this.exactRegisters();
    const words = new Uint32Array(Math.max(8, regs.length * 2));
    words.set(regs);
    this.words = words;
    this.n = regs.length;
    this.mode = SPARSE;
    this.cached = -1;
  }

  private toDense(): void {
    const dense = newDense();
    const histo = new Uint16Array(64);
    histo[0] = HLL_REGISTERS;
    for (let k = 0; k < this.n; k++) {
      const e = this.words[k]!;
      denseSet(dense, e >>> 6, e & 63);
      histo[0]--;
      histo[e & 63]!++;
    }
    this.dense = dense;
    this.histo = histo;
    this.words = EMPTY32;
    this.n = 0;
    this.mode = DENSE;
    this.cached = -1;
  }

  /** Raises register i to v (sketch forms); true when it grew. */
  private raise(i: number, v: number): boolean {
    if (this.mode === DENSE) {
      const old = denseGet(this.dense, i);
      if (v <= old) return false;
      denseSet(this.dense, i, v);
      this.histo[old]!--;
      this.histo[v]!++;
      this.cached = -1;
      return true;
    }
    const w = this.words;
    const key = i << 6;
    let a = 0;
    let b = this.n;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (w[mid]! < key) a = mid + 1;
      else b = mid;
    }
    if (a < this.n && w[a]! >>> 6 === i) {
      if (v <= (w[a]! & 63)) return false;
      w[a] = key | v;
      this.cached = -1;
      return true;
    }
    if (this.n === SPARSE_MAX) {
      this.toDense();
      return this.raise(i, v);
    }
    if (this.n === w.length) {
      const grown = new Uint32Array(Math.min(SPARSE_MAX, 2 * w.length));
      grown.set(w);
      this.words = grown;
    }
    this.words.copyWithin(a + 1, a, this.n);
    this.words[a] = key | v;
    this.n++;
    this.cached = -1;
    return true;
  }

  /** Register-wise max with another dense array: unpack both, max, repack, rebuild the histogram. */
  private mergeDense(src: Uint8Array): void {
    const a = unpackDense(this.dense, unpackA);
    const b = unpackDense(src, unpackB);
    let changed = false;
    for (let i = 0; i < HLL_REGISTERS; i++) {
      if (b[i]! > a[i]!) {
        a[i] = b[i]!;
        changed = true;
      }
    }
    if (!changed) return;
    packDense(a, this.dense);
    this.histo.fill(0);
    for (let i = 0; i < HLL_REGISTERS; i++) this.histo[a[i]!]!++;
    this.cached = -1;
  }

  private sparseHistogram(): Int32Array {
    histoScratch.fill(0);
    histoScratch[0] = HLL_REGISTERS - this.n;
    for (let k = 0; k < this.n; k++) histoScratch[this.words[k]! & 63]!++;
    return histoScratch;
  }
}

function strictBase64(s: string): Buffer {
  const buf = Buffer.from(s, 'base64');
  if (buf.toString('base64') !== s) throw new SnapshotError('distinct sketch JSON: invalid base64');
  return buf;
}
