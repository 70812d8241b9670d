/**
 * Series benchmarks: add and count against a plain Map<string, number> increment, over a
 * series holding 1M IPv4 (and 1M IPv6) addresses, and bytes per tracked address.
 */
import { ManualClock } from '../src/series/clock.js';
import { defineSeries, type CidrSeries } from '../src/series/index.js';
import { type Figure, heapBytes, nsPerOp, rng } from './harness.js';

const N = 1_000_000;
const T0 = 1_800_000_000_000;

function ipv4Keys(n: number, spread: 'clustered' | 'uniform', seed: number): string[] {
  const r = rng(seed);
  const out: string[] = [];
  const seen = new Set<number>();
  while (out.length < n) {
    let v: number;
    if (spread === 'uniform') v = Math.floor(r() * 2 ** 32);
    else {
      // 65,536 busy /24s (about 15 addresses each), spread over the whole space
      const net = Math.floor(rng(seed + Math.floor(r() * 65_536))() * 2 ** 24);
      v = net * 256 + Math.floor(r() * 256);
    }
    if (seen.has(v)) continue;
    seen.add(v);
    out.push(`${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`);
  }
  return out;
}

/** The same addresses as numbers; the strings die with this frame, so they do not blur heap figures. */
function ipv4Numbers(n: number, spread: 'clustered' | 'uniform', seed: number): Float64Array {
  return Float64Array.from(ipv4Keys(n, spread, seed), (k) => k.split('.').reduce((a, o) => a * 256 + Number(o), 0));
}

function ipv6Keys(n: number, seed: number): string[] {
  const r = rng(seed);
  const out: string[] = [];
  const h = (): string => Math.floor(r() * 65536).toString(16);
  for (let i = 0; i < n; i++) out.push(`2001:db8:${h()}:${h()}:${h()}:${h()}:${h()}:${h()}`);
  return out;
}

export function benchSeries(): Figure[] {
  const figures: Figure[] = [];
  const clock = new ManualClock(T0);
  const keys = ipv4Keys(N, 'clustered', 7);
  const M = keys.length;

  // Baseline: a plain Map<string, number> increment over the same keys.
  const map = new Map<string, number>();
  for (const k of keys) map.set(k, 1);
  const mapNs = nsPerOp(M, 5, (i) => {
    const k = keys[i]!;
    map.set(k, (map.get(k) ?? 0) + 1);
  });

  const s = defineSeries({ name: 'b4', type: 'cidr', interval: 60, windows: 4, options: { max_keys: 2 * N } }, clock) as CidrSeries;
  for (const k of keys) s.add(k);
  const addNs = nsPerOp(M, 5, (i) => s.add(keys[i]!));
  figures.push({ name: 'add (1M IPv4 keys)', value: 1e9 / addNs, unit: 'ops/s', baseline: 1e9 / mapNs, ratio: addNs / mapNs, target: '≤ 10×' });

  const q32 = nsPerOp(M, 5, (i) => s.count(keys[i]!, 0, 3));
  figures.push({ name: 'count /32 windows 0-3', value: 1e9 / q32, unit: 'ops/s', baseline: 1e9 / mapNs, ratio: q32 / mapNs, target: '≤ 10×' });
  const k24 = keys.map((k) => `${k}/24`);
  const q24 = nsPerOp(M, 5, (i) => s.count(k24[i]!, 0, 3));
  figures.push({ name: 'count /24 windows 0-3', value: 1e9 / q24, unit: 'ops/s', baseline: 1e9 / mapNs, ratio: q24 / mapNs, target: '≤ 20×' });
  const k20 = keys.map((k) => `${k}/20`);
  const q20 = nsPerOp(M / 10, 5, (i) => s.count(k20[i]!, 0, 3));
  figures.push({ name: 'count /20 (between levels)', value: 1e9 / q20, unit: 'ops/s', baseline: 1e9 / mapNs, ratio: q20 / mapNs, target: '≤ 20×' });
  const q0 = nsPerOp(M, 5, () => s.count('0.0.0.0/0', 0, 3));
  figures.push({ name: 'count /0 windows 0-3', value: 1e9 / q0, unit: 'ops/s', baseline: 1e9 / mapNs, ratio: q0 / mapNs, target: '≤ 20×' });

  // top-10 /24s: one scan; the baseline is one Map pass over the same keys.
  const topNs = nsPerOp(1, 3, () => s.top({ mask: 24, limit: 10 }));
  const mapScan = nsPerOp(1, 3, () => {
    let best = 0;
    for (const v of map.values()) if (v > best) best = v;
    return best;
  });
  figures.push({ name: 'top-10 /24 over 1M addresses', value: topNs / 1e6, unit: 'ms', baseline: mapScan / 1e6, ratio: topNs / mapScan });
  const top28 = nsPerOp(1, 3, () => s.top({ mask: 28, limit: 10 }));
  figures.push({ name: 'top-10 /28 (scans every address)', value: top28 / 1e6, unit: 'ms', baseline: mapScan / 1e6, ratio: top28 / mapScan });

  // IPv6: count at /64 over 1M addresses.
  const keys6 = ipv6Keys(N, 11);
  const s6 = defineSeries({ name: 'b6', type: 'cidr_ipv6', interval: 60, windows: 4, options: { max_keys: 2 * N } }, clock) as CidrSeries;
  for (const k of keys6) s6.add(k);
  const map6 = new Map<string, number>();
  for (const k of keys6) map6.set(k, 1);
  const map6Ns = nsPerOp(N, 3, (i) => {
    const k = keys6[i]!;
    map6.set(k, (map6.get(k) ?? 0) + 1);
  });
  const k64 = keys6.map((k) => `${k}/64`);
  const q64 = nsPerOp(N, 3, (i) => s6.count(k64[i]!, 0, 3));
  figures.push({ name: 'count /64 over 1M IPv6', value: 1e9 / q64, unit: 'ops/s', baseline: 1e9 / map6Ns, ratio: q64 / map6Ns, target: '≤ 20×' });
  return figures;
}

/**
 * Bytes per tracked address (windows = 4), for a clustered and a uniform address spread.
 * The series figure is the heap + array-buffer growth while it fills; the baseline is a
 * Map<string, number> holding the same addresses as strings it owns.
 */
export function benchMemory(): Figure[] {
  return [...memoryFor('clustered'), ...memoryFor('uniform'), ...memoryString(), ...memoryIpv6()];
}

/** Heap growth per key while `fill` runs (keys made inside it die with it, so they do not count). */
function heapPerKey(n: number, fill: () => unknown): { bytes: number; keep: unknown } {
  const b0 = heapBytes();
  const keep = fill();
  return { bytes: (heapBytes() - b0) / n, keep };
}

/** String keys (sender domains of 12-17 characters), windows 4: what to size a string max_keys by. */
function memoryString(): Figure[] {
  const n = 200_000;
  const s = heapPerKey(n, () => {
    const series = defineSeries({ name: 'ms', type: 'string', interval: 60, windows: 4, options: { max_keys: 2 * n } }, new ManualClock(T0));
    for (let i = 0; i < n; i++) series.add(`sender${i}.example`);
    return series;
  });
  const m = heapPerKey(n, () => {
    const map = new Map<string, number>();
    for (let i = 0; i < n; i++) map.set(`sender${i}.example`, 1);
    return map;
  });
  return [{ name: 'heap bytes per string key (domains, windows 4)', value: s.bytes, unit: 'B', baseline: m.bytes, ratio: s.bytes / m.bytes }];
}

/**
 * IPv6 clients, one per /64, windows 4: stored as /64 (the default and monitor series) against
 * full /128. Series arrays (memoryBytes): a heap delta taken right after the IPv4 figures is
 * blurred by their array buffers being released meanwhile.
 */
function memoryIpv6(): Figure[] {
  const n = 200_000;
  const r = rng(5);
  const keys = Array.from({ length: n }, () => {
    const h = (): string => Math.floor(r() * 65536).toString(16);
    return `2001:db8:${h()}:${h()}::${h()}`;
  });
  const per = (storePrefix: number | undefined): number => {
    const options = { max_keys: 2 * n, ...(storePrefix ? { store_prefix: storePrefix } : {}) };
    const series = defineSeries({ name: 'm6', type: 'cidr_ipv6', interval: 60, windows: 4, options }, new ManualClock(T0));
    for (const k of keys) series.add(k);
    return series.memoryBytes() / n;
  };
  const full = per(undefined);
  const p64 = per(64);
  return [{ name: 'series arrays per IPv6 client (store_prefix 64 vs /128)', value: p64, unit: 'B', baseline: full, ratio: p64 / full }];
}
function memoryFor(spread: 'clustered' | 'uniform'): Figure[] {
  const figures: Figure[] = [];
  {
    const nums = ipv4Numbers(N, spread, 3);
    const text = (v: number): string => `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
    const b0 = heapBytes();
    const s = defineSeries({ name: 'm', type: 'cidr', interval: 60, windows: 4, options: { max_keys: 2 * N } }, new ManualClock(T0)) as CidrSeries;
    for (const v of nums) s.add(text(v));
    const used = (heapBytes() - b0) / N;
    if (s.size() !== N) throw new Error('series lost keys');
    const b1 = heapBytes();
    const map = new Map<string, number>();
    for (const v of nums) map.set(text(v), 1);
    const mapBytes = (heapBytes() - b1) / N;
    figures.push({
      name: `heap bytes per address (${spread}, windows 4)`,
      value: used,
      unit: 'B',
      baseline: mapBytes,
      ratio: used / mapBytes,
      target: '≤ 100 B',
    });
    figures.push({
      name: `series arrays per address (${spread})`,
      value: s.memoryBytes() / N,
      unit: 'B',
      baseline: mapBytes,
      ratio: s.memoryBytes() / N / mapBytes,
    });
    if (map.size !== N) throw new Error('map lost keys');
  }
  return figures;
}
