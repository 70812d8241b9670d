/**
 * The HLL primitives: MurmurHash64A against vectors from Redis's own C function (compiled from
 * src/hyperloglog.c) and against a BigInt transcription of it, the register rank, the packed
 * dense layout, the estimator and the Redis string codec.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SnapshotError } from '../../src/errors.js';
import {
  HLL_DENSE_BYTES,
  HLL_REGISTERS,
  decodeRedis,
  denseGet,
  denseSet,
  encodeRedis,
  estimateFromHistogram,
  newDense,
  packDense,
  registerRank,
  unpackDense,
} from '../../src/series/hll.js';
import { REDIS_HLL_SEED, fromBigInt, murmur64Bytes, murmur64String, toBigInt } from '../../src/series/murmur64.js';

/** Printed by Redis's MurmurHash64A (hyperloglog.c, gcc -O2, x86-64) with seed 0xadc83b19. */
const VECTORS: Array<[string, bigint]> = [
  ['', 0xd8dfea6585bc9732n],
  ['a', 0x53d2470a9b43b1a7n],
  ['ab', 0x0eaed676437142cfn],
  ['abc', 0x77ec90aeb374e502n],
  ['abcdefg', 0x22fe613bb08c9602n],
  ['abcdefgh', 0xf3a65df559914567n],
  ['abcdefghi', 0x834fba4d9152daf7n],
  ['hello world', 0xa919bc3051f624b7n],
  ['user@example.com', 0xd43eb48ddad089c7n],
  ['192.0.2.0/24', 0xa992cd5ee7493f1an],
  ['été', 0xc4cf6e43a4e4db17n],
  ['The quick brown fox jumps over the lazy dog', 0x51606c5c5b561acen],
];

/** A line-by-line BigInt transcription of Redis's MurmurHash64A (slow, obviously right). */
function murmurRef(bytes: Uint8Array, seed: bigint): bigint {
  const M = 0xc6a4a7935bd1e995n;
  const mask = (1n << 64n) - 1n;
  const len = bytes.length;
  let h = (seed ^ (BigInt(len) * M)) & mask;
  const end = len - (len & 7);
  for (let i = 0; i < end; i += 8) {
    let k = 0n;
    for (let b = 7; b >= 0; b--) k = (k << 8n) | BigInt(bytes[i + b]!);
    k = (k * M) & mask;
    k ^= k >> 47n;
    k = (k * M) & mask;
    h ^= k;
    h = (h * M) & mask;
  }
  const rest = len & 7;
  if (rest > 0) {
    for (let b = rest - 1; b >= 0; b--) h ^= BigInt(bytes[end + b]!) << BigInt(8 * b);
    h = (h * M) & mask;
  }
  h ^= h >> 47n;
  h = (h * M) & mask;
  h ^= h >> 47n;
  return h;
}

describe('MurmurHash64A', () => {
  it.each(VECTORS)('%j hashes as Redis hashes it', (s, want) => {
    expect(toBigInt(murmur64String(s, REDIS_HLL_SEED, { hi: 0, lo: 0 }))).toBe(want);
    const bytes = Buffer.from(s, 'utf8');
    expect(toBigInt(murmur64Bytes(bytes, bytes.length, REDIS_HLL_SEED, { hi: 0, lo: 0 }))).toBe(want);
  });

  it('agrees with a BigInt transcription for any bytes, any seed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat({ max: 0xffffffff }), (bytes, seed) => {
        const got = toBigInt(murmur64Bytes(bytes, bytes.length, seed, { hi: 0, lo: 0 }));
        expect(got).toBe(murmurRef(bytes, BigInt(seed)));
      }),
      { numRuns: 500 },
    );
  });

  it('hashes any string as its UTF-8 bytes (ASCII fast path, lone surrogates → U+FFFD)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'Z', '7', '@', 'é', '€', '𝄞', '\ud800', '\u0000'), maxLength: 40 }), (s) => {
        const bytes = Buffer.from(s, 'utf8');
        expect(toBigInt(murmur64String(s, REDIS_HLL_SEED, { hi: 0, lo: 0 }))).toBe(murmurRef(bytes, BigInt(REDIS_HLL_SEED)));
      }),
      { numRuns: 500 },
    );
  });

  it('BigInt halves round-trip', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        expect(toBigInt(fromBigInt(v))).toBe(v);
      }),
    );
  });
});

describe('register rank', () => {
  it('is the run of zeros from bit 14 up, plus one, with a sentinel at bit 64', () => {
    const rankRef = (h: bigint): number => {
      let x = (h >> 14n) | (1n << 50n);
      let c = 1;
      while ((x & 1n) === 0n) {
        x >>= 1n;
        c++;
      }
      return c;
    };
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.nat({ max: 63 }), (h, shift) => {
        const v = (h << BigInt(shift)) & ((1n << 64n) - 1n); // plenty of long zero runs
        const { hi, lo } = fromBigInt(v);
        expect(registerRank(hi, lo)).toBe(rankRef(v));
      }),
      { numRuns: 2000 },
    );
    expect(registerRank(0, 0)).toBe(51);
    expect(registerRank(0, 1 << 14)).toBe(1);
    expect(registerRank(1, 0)).toBe(19);
    expect(registerRank(0x80000000, 0)).toBe(50);
  });
});

describe('dense registers (Redis layout)', () => {
  it('stores 6 bits per register, LSB first, without touching neighbours', () => {
    const regs = newDense();
    const model = new Uint8Array(HLL_REGISTERS);
    fc.assert(
      fc.property(fc.nat({ max: HLL_REGISTERS - 1 }), fc.nat({ max: 63 }), (i, v) => {
        denseSet(regs, i, v);
        model[i] = v;
        for (const j of [i - 1, i, i + 1]) if (j >= 0 && j < HLL_REGISTERS) expect(denseGet(regs, j)).toBe(model[j]);
      }),
      { numRuns: 3000 },
    );
    for (let i = 0; i < HLL_REGISTERS; i++) expect(denseGet(regs, i)).toBe(model[i]);
    // unpack / pack agree with get / set
    const unpacked = unpackDense(regs, new Uint8Array(HLL_REGISTERS));
    expect(Buffer.from(unpacked).equals(Buffer.from(model))).toBe(true);
    const repacked = packDense(model, newDense());
    expect(Buffer.from(repacked).equals(Buffer.from(regs))).toBe(true);
    // the layout hyperloglog.c documents: |11000000|22221111|33333322|
    const r = newDense();
    denseSet(r, 0, 0b000011);
    denseSet(r, 1, 0b000010);
    expect(r[0]).toBe(0b10000011);
    expect(r[1]).toBe(0b00000000);
    denseSet(r, 2, 0b111111);
    expect(r[1]).toBe(0b11110000);
    expect(r[2]).toBe(0b00000011);
  });
});

describe('estimator', () => {
  const histoOf = (regs: Uint8Array): Int32Array => {
    const h = new Int32Array(64);
    for (const v of regs) h[v]!++;
    return h;
  };

  it('is 0 for no registers, small counts for few', () => {
    expect(estimateFromHistogram(histoOf(new Uint8Array(HLL_REGISTERS)))).toBe(0);
    const regs = new Uint8Array(HLL_REGISTERS);
    regs[5] = 1;
    expect(estimateFromHistogram(histoOf(regs))).toBe(1);
    for (let i = 1; i <= 50; i++) regs[i * 300] = 1 + (i % 3);
    expect(estimateFromHistogram(histoOf(regs))).toBe(51);
  });

  it('ignores register values above 51, as hllCount does (a decoded string may hold up to 63)', () => {
    const h = histoOf(new Uint8Array(HLL_REGISTERS).fill(10));
    h[10]!--;
    const without = estimateFromHistogram(h);
    h[60]!++;
    expect(estimateFromHistogram(h)).toBe(without);
  });

  it('saturated registers give a finite count', () => {
    expect(estimateFromHistogram(histoOf(new Uint8Array(HLL_REGISTERS).fill(51)))).toBe(Number.MAX_SAFE_INTEGER);
    expect(estimateFromHistogram(histoOf(new Uint8Array(HLL_REGISTERS).fill(40)))).toBeGreaterThan(1e15);
  });
});

describe('Redis HLL string', () => {
  const sparseOf = (regs: Uint8Array): { sparse: Uint32Array; n: number } => {
    const out: number[] = [];
    regs.forEach((v, i) => v !== 0 && out.push((i << 6) | v));
    return { sparse: Uint32Array.from(out), n: out.length };
  };

  it('round-trips any registers (sparse when Redis would keep it sparse, else dense)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: HLL_REGISTERS - 1 }), fc.integer({ min: 1, max: 51 })), { maxLength: 1500 }), (sets) => {
        const regs = new Uint8Array(HLL_REGISTERS);
        for (const [i, v] of sets) regs[i] = v;
        const buf = encodeRedis(sparseOf(regs));
        expect(buf.subarray(0, 4).toString('latin1')).toBe('HYLL');
        expect(buf[15]! & 0x80).toBe(0x80); // cached cardinality marked stale
        if (buf[4] === 1) expect(buf.length).toBeLessThanOrEqual(16 + 3000);
        else expect(buf.length).toBe(16 + HLL_DENSE_BYTES);
        expect(regs.some((v) => v > 32) ? buf[4] : undefined).not.toBe(1);
        expect(Buffer.from(decodeRedis(buf)).equals(Buffer.from(regs))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('an empty set is one XZERO:16384', () => {
    const buf = encodeRedis({ sparse: new Uint32Array(0), n: 0 });
    expect([...buf.subarray(16)]).toEqual([0x7f, 0xff]);
  });

  it('encodes the example of hyperloglog.c: XZERO:1000 VAL:2,1 ZERO:19 VAL:3,2 XZERO:15362', () => {
    const regs = new Uint8Array(HLL_REGISTERS);
    regs[1000] = 2;
    regs[1020] = 3;
    regs[1021] = 3;
    const body = [...encodeRedis(sparseOf(regs)).subarray(16)];
    expect(body).toEqual([0x40 | (999 >> 8), 999 & 255, 0x80 | (1 << 2), 18, 0x80 | (2 << 2) | 1, 0x40 | (15361 >> 8), 15361 & 255]);
  });

  it('refuses strings Redis would refuse', () => {
    const good = encodeRedis({ sparse: Uint32Array.of((7 << 6) | 3), n: 1 });
    const bad = (mut: (b: Buffer) => Buffer): void => {
      expect(() => decodeRedis(mut(Buffer.from(good)))).toThrow(SnapshotError);
    };
    bad((b) => b.subarray(0, 10));
    bad((b) => Buffer.concat([Buffer.from('HYLX'), b.subarray(4)]));
    bad((b) => ((b[4] = 2), b));
    bad((b) => b.subarray(0, b.length - 1)); // runs stop short of 16384
    bad((b) => Buffer.concat([b, Buffer.from([0x00])])); // one register too many
    bad((b) => ((b[4] = 0), b)); // dense of the wrong length
    bad((b) => Buffer.concat([b.subarray(0, 16), Buffer.from([0x7f, 0xff, 0x80])])); // VAL past the end
    bad((b) => Buffer.concat([b.subarray(0, 16), Buffer.from([0x40])])); // truncated XZERO
  });
});
