/**
 * Distinct counting: DistinctSketch / DistinctTable against exact JavaScript Sets of the same
 * strings, measured in the same run. Times are ns per op (ratio = ours ÷ the Set's); memory is
 * heap + array-buffer growth per key (ratio = ours ÷ Sets holding the strings); the error is
 * the root mean square relative error over several sets (ratio = ÷ the 0.81% standard error).
 */
import { DistinctSketch } from '../src/series/distinct.js';
import { DistinctTable } from '../src/series/distinct-table.js';
import { benchDistinctSeries } from './distinct-series.js';
import { HLL_REGISTERS, HLL_STANDARD_ERROR, estimateFromHistogram } from '../src/series/hll.js';
import { type Figure, heapBytes, nsPerOp, rng } from './harness.js';

const N = 1_000_000;
const WINDOWS = [0, 1, 2, 3];

/** Recipient-like strings, e.g. "k3x9q0b@mail-417.example.net". */
function recipients(n: number, seed: number): string[] {
  const r = rng(seed);
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const local = Math.floor(r() * 36 ** 7).toString(36);
    out[i] = `${local}.${i}@mail-${Math.floor(r() * 1000)}.example.net`;
  }
  return out;
}

export function benchDistinct(): Figure[] {
  return [...timing(), ...benchDistinctSeries(), ...memory(), ...error()];
}

function timing(): Figure[] {
  const figures: Figure[] = [];
  const vals = recipients(N, 21);

  // Baseline: Set.add of the same strings (prefilled, as the sketch is).
  const set = new Set<string>();
  for (const v of vals) set.add(v);
  const setNs = nsPerOp(N, 5, (i) => set.add(vals[i]!));

  const s = new DistinctSketch();
  for (const v of vals) s.add(v);
  const addNs = nsPerOp(N, 5, (i) => s.add(vals[i]!));
  figures.push({ name: 'add (1M values, one dense sketch)', value: 1e9 / addNs, unit: 'ops/s', baseline: 1e9 / setNs, ratio: addNs / setNs, target: '≤ 10×' });

  // The per-key path: 100k keys × 4 windows, 8 values per key (small sets in the arena).
  const KEYS = 100_000;
  const t = new DistinctTable(4, KEYS);
  const keyOf = (i: number): number => (i * 7919) % KEYS;
  for (let i = 0; i < 8 * KEYS; i++) t.add(keyOf(i), i & 3, vals[i]!);
  const tableNs = nsPerOp(8 * KEYS, 5, (i) => t.add(keyOf(i), i & 3, vals[i]!));
  const perKey: Array<Array<Set<string>>> = Array.from({ length: KEYS }, () => WINDOWS.map(() => new Set<string>()));
  for (let i = 0; i < 8 * KEYS; i++) perKey[keyOf(i)]![i & 3]!.add(vals[i]!);
  const perKeyNs = nsPerOp(8 * KEYS, 5, (i) => perKey[keyOf(i)]![i & 3]!.add(vals[i]!));
  figures.push({ name: 'add, small keys (100k keys × 4 windows)', value: 1e9 / tableNs, unit: 'ops/s', baseline: 1e9 / perKeyNs, ratio: tableNs / perKeyNs, target: '≤ 10×' });

  // Count of one small key over windows 0-3; baseline: size of the union of its 4 Sets.
  const qSmall = nsPerOp(KEYS, 5, (i) => t.count(i, WINDOWS));
  const qSmallSet = nsPerOp(KEYS, 5, (i) => unionSize(perKey[i]!));
  figures.push({ name: 'count, small key, windows 0-3', value: 1e9 / qSmall, unit: 'ops/s', baseline: 1e9 / qSmallSet, ratio: qSmall / qSmallSet });

  // Count of one large key: one window (cached, and the estimator alone) and windows 0-3.
  const large = WINDOWS.map((w) => {
    const d = new DistinctSketch();
    for (let i = w * 20_000; i < w * 20_000 + 50_000; i++) d.add(vals[i]!);
    return d;
  });
  const largeSets = WINDOWS.map((w) => new Set(vals.slice(w * 20_000, w * 20_000 + 50_000)));
  const qCached = nsPerOp(100_000, 5, () => large[0]!.count());
  const setSize = nsPerOp(100_000, 5, () => largeSets[0]!.size);
  figures.push({ name: 'count, large key, 1 window (cached)', value: qCached, unit: 'ns', baseline: setSize, ratio: qCached / setSize });
  // After a register changed, count() runs the estimator over the 64-entry histogram it keeps.
  const histo = new Int32Array(64);
  histo[0] = HLL_REGISTERS;
  large[0]!.forEachRegister((_, v) => {
    histo[0]!--;
    histo[v]!++;
  });
  if (estimateFromHistogram(histo) !== large[0]!.count()) throw new Error('histogram differs from the sketch');
  const qEst = nsPerOp(100_000, 5, () => estimateFromHistogram(histo));
  figures.push({ name: 'count, large key, 1 window, after a change', value: qEst, unit: 'ns', baseline: setNs, ratio: qEst / setNs });
  const q4 = nsPerOp(50, 5, () => DistinctSketch.unionCount(large));
  const q4Set = nsPerOp(3, 3, () => unionSize(largeSets));
  figures.push({ name: 'count, large key (4 × 50k), windows 0-3', value: q4 / 1e3, unit: 'µs', baseline: q4Set / 1e3, ratio: q4 / q4Set });

  // A /24: the union of 256 small keys over windows 0-3.
  const ids = Array.from({ length: 256 }, (_, j) => j);
  const q24 = nsPerOp(2000, 5, (i) => t.countUnion(ids.map((j) => (i * 256 + j) % KEYS), WINDOWS));
  const q24Set = nsPerOp(2000, 5, (i) => {
    const u = new Set<string>();
    for (let j = 0; j < 256; j++) for (const w of perKey[(i * 256 + j) % KEYS]!) for (const v of w) u.add(v);
    return u.size;
  });
  figures.push({ name: 'count /24 = union of 256 small keys', value: q24 / 1e3, unit: 'µs', baseline: q24Set / 1e3, ratio: q24 / q24Set });
  if (set.size !== N) throw new Error('baseline lost values');
  return figures;
}

function unionSize(sets: Array<Set<string>>): number {
  const u = new Set<string>(sets[0]);
  for (let k = 1; k < sets.length; k++) for (const v of sets[k]!) u.add(v);
  return u.size;
}

/** Heap bytes per key at 4 windows, against 4 Sets per key that own their strings. */
function memory(): Figure[] {
  const figures: Figure[] = [];
  const cases: MemoryCase[] = [
    { name: 'small key: 8 values, 2 per window', keys: 100_000, perWindow: 2, shared: false, target: '≤ 200 B' },
    { name: 'small key: the same 8 values in all 4 windows', keys: 100_000, perWindow: 8, shared: true, target: '≤ 200 B' },
    { name: 'small key: 8 other values in each window (32)', keys: 50_000, perWindow: 8, shared: false },
    { name: 'large key: 10,000 values per window', keys: 20, perWindow: 10_000, shared: false },
  ];
  for (const c of cases) figures.push(memoryCase(c));
  return figures;
}

interface MemoryCase {
  name: string;
  keys: number;
  perWindow: number;
  /** The same values in every window (else other values in each). */
  shared: boolean;
  target?: string;
}

/** One case per call, so nothing of the previous case is still reachable from this frame. */
function memoryCase(c: MemoryCase): Figure {
  const value = (key: number, w: number, j: number): string => `rcpt${c.shared ? j : w * c.perWindow + j}.${key}@mail-${key % 1000}.example.net`;
  const ours = tableBytes(c, value);
  const base = setBytes(c, value);
  return { name: `bytes per key, 4 windows, ${c.name}`, value: ours, unit: 'B', baseline: base, ratio: ours / base, ...(c.target ? { target: c.target } : {}) };
}

function tableBytes(c: MemoryCase, value: (key: number, w: number, j: number) => string): number {
  const b0 = heapBytes();
  const t = new DistinctTable(4, c.keys);
  for (let key = 0; key < c.keys; key++) for (const w of WINDOWS) for (let j = 0; j < c.perWindow; j++) t.add(key, w, value(key, w, j));
  const used = (heapBytes() - b0) / c.keys;
  if (t.count(0, WINDOWS) < (c.shared ? c.perWindow : 4 * c.perWindow) * 0.97) throw new Error('table lost values');
  return used;
}

function setBytes(c: MemoryCase, value: (key: number, w: number, j: number) => string): number {
  const b0 = heapBytes();
  const sets: Array<Array<Set<string>>> = [];
  for (let key = 0; key < c.keys; key++) {
    const row = WINDOWS.map(() => new Set<string>());
    for (const w of WINDOWS) for (let j = 0; j < c.perWindow; j++) row[w]!.add(value(key, w, j));
    sets.push(row);
  }
  const used = (heapBytes() - b0) / c.keys;
  if (sets.length !== c.keys) throw new Error('baseline lost keys');
  return used;
}

/** Root mean square relative error over several sets of n values. */
function error(): Figure[] {
  const figures: Figure[] = [];
  const se = 100 * HLL_STANDARD_ERROR;
  for (const [n, sets] of [
    [1_000, 200],
    [10_000, 50],
    [100_000, 10],
  ] as const) {
    let sq = 0;
    let worst = 0;
    for (let k = 0; k < sets; k++) {
      const s = new DistinctSketch();
      for (let i = 0; i < n; i++) s.add(`err${k}-${i}@example.org`);
      const rel = (100 * (s.count() - n)) / n;
      sq += rel * rel;
      worst = Math.max(worst, Math.abs(rel));
    }
    const rms = Math.sqrt(sq / sets);
    figures.push({ name: `error at ${n.toLocaleString('en-US')} values (rms of ${sets} sets; worst ${worst.toFixed(2)}%)`, value: rms, unit: '%', baseline: se, ratio: rms / se, target: '≤ 2%' });
  }
  return figures;
}
