/**
 * Counts the union of many distinct sets (windows 0..3 of a key, the 256 addresses of a /24)
 * without building a sketch for it: hashes go into a small exact table while the union has at
 * most EXACT_MAX values, then every value becomes a register in one reused scratch array whose
 * histogram is kept as registers change, so a count costs what was fed in, not 16,384 registers.
 *
 * Same rule as a DistinctSketch: a union of at most EXACT_MAX values counts exactly, a larger
 * one gets the HLL estimate of its registers (which is PFCOUNT of the same keys).
 */
import { HLL_INDEX_MASK, HLL_REGISTERS, estimateFromHistogram, registerRank } from './hll.js';

/** Sets of up to this many distinct values are counted exactly. */
export const EXACT_MAX = 64;

const TABLE = 128; // open addressing, load ≤ 1/2
const TABLE_MASK = TABLE - 1;

export class UnionCounter {
  private readonly hi = new Uint32Array(TABLE);
  private readonly lo = new Uint32Array(TABLE);
  private readonly used = new Uint8Array(TABLE);
  private nExact = 0;
  private sketching = false;
  /**
   * Once a whole dense array came in, registers are max-ed without bookkeeping and the
   * histogram is taken at count(); before that, changed registers are listed and the
   * histogram follows them (a union of small sets never touches 16,384 registers).
   */
  private full = false;
  /** One byte per register (scratch, reused). */
  private readonly regs = new Uint8Array(HLL_REGISTERS);
  private readonly touched = new Uint16Array(HLL_REGISTERS);
  private nTouched = 0;
  private readonly histo = new Int32Array(64);

  constructor() {
    this.histo[0] = HLL_REGISTERS;
  }

  reset(): void {
    if (this.nExact > 0) this.used.fill(0);
    this.nExact = 0;
    if (!this.sketching) return;
    if (this.full || this.nTouched > 1024) this.regs.fill(0);
    else for (let k = 0; k < this.nTouched; k++) this.regs[this.touched[k]!] = 0;
    this.nTouched = 0;
    this.histo.fill(0);
    this.histo[0] = HLL_REGISTERS;
    this.sketching = false;
    this.full = false;
  }

  /** True while the union is small enough to be counted exactly. */
  get exact(): boolean {
    return !this.sketching;
  }

  addHash(hi: number, lo: number): void {
    if (this.sketching) {
      this.addRegister(lo & HLL_INDEX_MASK, registerRank(hi, lo));
      return;
    }
    let s = lo & TABLE_MASK;
    while (this.used[s] === 1) {
      if (this.lo[s] === lo && this.hi[s] === hi) return;
      s = (s + 1) & TABLE_MASK;
    }
    if (this.nExact === EXACT_MAX) {
      this.spill();
      this.addRegister(lo & HLL_INDEX_MASK, registerRank(hi, lo));
      return;
    }
    this.used[s] = 1;
    this.hi[s] = hi;
    this.lo[s] = lo;
    this.nExact++;
  }

  /** Raises register `idx` to `v` (leaves exact mode: registers carry no identity). */
  addRegister(idx: number, v: number): void {
    if (!this.sketching) this.spill();
    const old = this.regs[idx]!;
    if (v <= old) return;
    this.regs[idx] = v;
    if (this.full) return;
    if (old === 0) this.touched[this.nTouched++] = idx;
    this.histo[old]!--;
    this.histo[v]!++;
  }

  /** Register-wise max with a whole dense register array (Redis's packed layout). */
  addDense(packed: Uint8Array): void {
    if (!this.sketching) this.spill();
    this.full = true;
    const r = this.regs;
    for (let i = 0, b = 0; i < HLL_REGISTERS; i += 4, b += 3) {
      const b0 = packed[b]!;
      const b1 = packed[b + 1]!;
      const b2 = packed[b + 2]!;
      const v0 = b0 & 63;
      const v1 = (b0 >>> 6) | ((b1 & 15) << 2);
      const v2 = (b1 >>> 4) | ((b2 & 3) << 4);
      const v3 = b2 >>> 2;
      if (v0 > r[i]!) r[i] = v0;
      if (v1 > r[i + 1]!) r[i + 1] = v1;
      if (v2 > r[i + 2]!) r[i + 2] = v2;
      if (v3 > r[i + 3]!) r[i + 3] = v3;
    }
  }

  /** Moves the exact hashes into registers. */
  private spill(): void {
    this.sketching = true;
    for (let s = 0; s < TABLE; s++) {
      if (this.used[s] === 1) this.addRegister(this.lo[s]! & HLL_INDEX_MASK, registerRank(this.hi[s]!, this.lo[s]!));
    }
    this.used.fill(0);
    this.nExact = 0;
  }

  count(): number {
    if (!this.sketching) return this.nExact;
    if (this.full) {
      this.histo.fill(0);
      for (let i = 0; i < HLL_REGISTERS; i++) this.histo[this.regs[i]!]!++;
    }
    return estimateFromHistogram(this.histo);
  }
}

/** One counter per process: counting is synchronous, so it is never used by two callers at once. */
export const sharedUnionCounter = new UnionCounter();
