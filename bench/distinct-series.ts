/**
 * Distinct cidr series (distinct: true) over 100k addresses × 4 windows, 2 values per address
 * and window (8 per address, 2,048 per /24): adds, and counts at /32 and /24 over windows 0-3,
 * against a Set model doing the same job in the same run (a Set of values per address and
 * window, and per /24 and window where the series keeps /24; counts are the union's size).
 */
import { ManualClock } from '../src/series/clock.js';
import { defineSeries, type DistinctCidrSeries } from '../src/series/index.js';
import { type Figure, heapBytes, nsPerOp } from './harness.js';

const KEYS = 100_000;
const NETS = Math.ceil(KEYS / 256);
const WINDOWS = 4;
const PER_WINDOW = 2;
const T0 = 1_800_000_000_000;

const ipOf = (i: number): string => `10.${i >>> 16}.${(i >>> 8) & 255}.${i & 255}`;
const netOf = (i: number): string => `10.${i >>> 8}.${i & 255}.0`;
const valueOf = (i: number, w: number, j: number): string => `r${w}x${j}.${i}@mail-${i % 1000}.example.net`;

/** The Set model: per key (an address or a /24) one Set per window, oldest window first. */
type SetModel = Map<string, Array<Set<string>>>;

function modelAdd(m: SetModel, key: string, w: number, value: string): void {
  let row = m.get(key);
  if (!row) m.set(key, (row = Array.from({ length: WINDOWS }, () => new Set<string>())));
  row[w]!.add(value);
}

function unionSize(rows: Array<Array<Set<string>>>): number {
  const u = new Set<string>();
  for (const row of rows) for (const set of row) for (const v of set) u.add(v);
  return u.size;
}

/** Feeds the same adds, window by window, to the series (when given) and the model; returns ns per add. */
function fill(series: DistinctCidrSeries | null, clock: ManualClock, model: { ips: SetModel; nets: SetModel | null } | null): number {
  const t0 = process.hrtime.bigint();
  for (let w = 0; w < WINDOWS; w++) {
    for (let i = 0; i < KEYS; i++) {
      const ip = ipOf(i);
      for (let j = 0; j < PER_WINDOW; j++) {
        const v = valueOf(i, w, j);
        if (series) series.addValue(ip, v);
        if (model) {
          modelAdd(model.ips, ip, w, v);
          if (model.nets) modelAdd(model.nets, ip.slice(0, ip.lastIndexOf('.')), w, v);
        }
      }
    }
    if (w < WINDOWS - 1) clock.advanceSeconds(60);
  }
  return Number(process.hrtime.bigint() - t0) / (KEYS * WINDOWS * PER_WINDOW);
}

function makeSeries(levels: number[]): { s: DistinctCidrSeries; clock: ManualClock } {
  const clock = new ManualClock(T0);
  const s = defineSeries({ name: `bd${levels.join('-')}`, type: 'cidr', interval: 60, windows: WINDOWS, options: { distinct: true, levels, max_keys: 2 * KEYS } }, clock);
  return { s: s as DistinctCidrSeries, clock };
}

export function benchDistinctSeries(): Figure[] {
  return [...timing(), seriesBytes()];
}

/** One function, so its series and model are unreachable when seriesBytes measures the heap. */
function timing(): Figure[] {
  const figures: Figure[] = [];
  const kept = makeSeries([24]);
  const model = { ips: new Map() as SetModel, nets: new Map() as SetModel };
  // The Set model first, then the series: each fill timed alone (first adds, not repeats).
  const modelNs = fill(null, new ManualClock(T0), model);
  const addNs = fill(kept.s, kept.clock, null);
  figures.push({ name: 'series add (100k addresses, /24 kept), first adds', value: 1e9 / addNs, unit: 'ops/s', baseline: 1e9 / modelNs, ratio: addNs / modelNs, target: '≤ 10×' });

  const ips = Array.from({ length: KEYS }, (_, i) => ipOf(i));
  const q32 = nsPerOp(KEYS, 5, (i) => kept.s.count(ips[i]!, 0, WINDOWS - 1));
  const q32Set = nsPerOp(KEYS, 5, (i) => unionSize([model.ips.get(ips[i]!)!]));
  if (kept.s.count(ips[7]!, 0, WINDOWS - 1) !== WINDOWS * PER_WINDOW) throw new Error('series lost values at /32');
  figures.push({ name: 'count /32, windows 0-3 (100k keys)', value: q32, unit: 'ns', baseline: q32Set, ratio: q32 / q32Set });

  const nets = Array.from({ length: NETS }, (_, n) => netOf(n));
  const q24 = nsPerOp(NETS, 5, (n) => kept.s.count(`${nets[n]!}/24`, 0, WINDOWS - 1));
  const q24Set = nsPerOp(NETS, 5, (n) => unionSize([model.nets.get(nets[n]!.slice(0, -2))!]));
  const exact24 = unionSize([model.nets.get(nets[0]!.slice(0, -2))!]);
  if (Math.abs(kept.s.count(`${nets[0]!}/24`, 0, WINDOWS - 1) - exact24) > 0.1 * exact24) throw new Error('series count at /24 is off');
  figures.push({ name: 'count /24 (kept level), windows 0-3 (2,048 values each)', value: q24 / 1e3, unit: 'µs', baseline: q24Set / 1e3, ratio: q24 / q24Set, target: '≤ 50×' });

  // /24 not kept: the union of the 256 addresses' sets; baseline: the union of their Sets.
  const loose = makeSeries([]);
  fill(loose.s, loose.clock, null);
  const rowsOf = (n: number): Array<Array<Set<string>>> => Array.from({ length: 256 }, (_, k) => model.ips.get(ipOf(n * 256 + k))).filter((r) => r !== undefined);
  const some = Array.from({ length: 64 }, (_, k) => Math.floor((k * NETS) / 64));
  const q24Loose = nsPerOp(some.length, 3, (k) => loose.s.count(`${nets[some[k]!]!}/24`, 0, WINDOWS - 1));
  const q24LooseSet = nsPerOp(some.length, 3, (k) => unionSize(rowsOf(some[k]!)));
  figures.push({ name: 'count /24 (not kept: 256 addresses), windows 0-3', value: q24Loose / 1e3, unit: 'µs', baseline: q24LooseSet / 1e3, ratio: q24Loose / q24LooseSet, target: '≤ 50×' });

  return figures;
}

/** Heap per address of a distinct series keeping /24 (its entries, sets, /24 unions), against the Set model's. */
function seriesBytes(): Figure {
  const b0 = heapBytes();
  const { s, clock } = makeSeries([24]);
  fill(s, clock, null);
  const ours = (heapBytes() - b0) / KEYS;
  const b1 = heapBytes();
  const model = { ips: new Map() as SetModel, nets: new Map() as SetModel };
  fill(null, new ManualClock(T0), model);
  const base = (heapBytes() - b1) / KEYS;
  if (s.size() < KEYS || model.ips.size !== KEYS) throw new Error('lost keys');
  return { name: 'series bytes per address, 4 windows, 8 values, /24 kept', value: ours, unit: 'B', baseline: base, ratio: ours / base };
}
