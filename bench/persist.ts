/**
 * Persistence benchmark: a persisted cidr series of 200,000 keys (15 min × 4 windows).
 *
 * - the longest event-loop pause while it is saved: the sliced save (SeriesPersister) against
 *   the old one (one synchronous snapshot, then 10,000-entry chunks), measured in the same run
 *   with a setImmediate probe that records the longest gap between two of its turns;
 * - wall time, bytes and heap growth of a save, same baseline;
 * - CPU of a persister tick when nothing changed, against the old tick (which saved anyway).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { pino } from 'pino';
import { ManualClock } from '../src/series/clock.js';
import type { CidrSeries } from '../src/series/index.js';
import { SeriesRegistry } from '../src/series/registry.js';
import { SeriesPersister } from '../src/history/persister.js';
import { type Figure, gc } from './harness.js';

const KEYS = 200_000;
const ROUNDS = 5;
const T0 = 1_800_000_000_000;

interface Probe {
  stop(): { maxGapMs: number; maxHeapGrowth: number };
}

/** Spins on setImmediate, recording the longest gap between two turns and the heap peak. */
function probe(): Probe {
  let last = performance.now();
  let maxGap = 0;
  const heap0 = v8.getHeapStatistics().used_heap_size;
  let heapMax = heap0;
  let turns = 0;
  let running = true;
  const spin = (): void => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    if ((++turns & 15) === 0) heapMax = Math.max(heapMax, v8.getHeapStatistics().used_heap_size);
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  return {
    stop() {
      running = false;
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      heapMax = Math.max(heapMax, v8.getHeapStatistics().used_heap_size);
      return { maxGapMs: maxGap, maxHeapGrowth: heapMax - heap0 };
    },
  };
}

/** The save as it was before the sliced one: a synchronous snapshot, then chunks of 10,000 entries. */
async function legacySave(series: CidrSeries, file: string): Promise<number> {
  const snap = series.snapshot();
  const { entries, ...rest } = snap;
  const tmp = `${file}.tmp-legacy`;
  const fh = await fsp.open(tmp, 'wx', 0o640);
  let bytes = 0;
  const write = async (text: string): Promise<void> => {
    const buf = Buffer.from(text, 'utf8');
    bytes += buf.length;
    let off = 0;
    while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
  };
  await write(`{"format":"auditgate-series-state","format_version":1,"series":"b","snapshot":${JSON.stringify(rest).slice(0, -1)},"entries":[`);
  for (let i = 0; i < entries.length; i += 10_000) {
    let s = '';
    for (let j = i; j < Math.min(entries.length, i + 10_000); j++) s += (j === 0 ? '\n' : ',\n') + JSON.stringify(entries[j]);
    await write(s);
  }
  await write('\n]}}\n');
  await fh.sync();
  await fh.close();
  await fsp.rename(tmp, file);
  return bytes;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchPersist(): Promise<Figure[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-bench-persist-'));
  try {
    const clock = new ManualClock(T0);
    const registry = new SeriesRegistry(clock);
    const s = registry.define({ name: 'b', type: 'cidr', interval: 900, windows: 4, options: { persist: true } }) as CidrSeries;
    for (let i = 0; i < KEYS; i++) s.add(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1 + (i % 3));
    const persister = new SeriesPersister({ registry, stateDir: dir, intervalSec: 5, logger: pino({ level: 'silent' }), clock, seriesNames: () => ['b'] });
    const legacyFile = path.join(dir, 'legacy.json');

    const sliced = { pause: [] as number[], time: [] as number[], heap: [] as number[], bytes: 0, innerPause: [] as number[] };
    const legacy = { pause: [] as number[], time: [] as number[], heap: [] as number[], bytes: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      // alternate, so a noisy moment of the machine hits both
      s.add('192.0.2.1'); // a change: the persister has something to save
      gc();
      let p = probe();
      let t = performance.now();
      await persister.saveAll();
      sliced.time.push(performance.now() - t);
      let res = p.stop();
      sliced.pause.push(res.maxGapMs);
      sliced.heap.push(res.maxHeapGrowth);
      sliced.innerPause.push(persister.stats().last!.maxPauseMs);
      sliced.bytes = persister.stats().last!.bytes;

      gc();
      p = probe();
      t = performance.now();
      legacy.bytes = await legacySave(s, legacyFile);
      legacy.time.push(performance.now() - t);
      res = p.stop();
      legacy.pause.push(res.maxGapMs);
      legacy.heap.push(res.maxHeapGrowth);
    }

    // An idle tick: nothing changed since the last save.
    const TICKS = 2000;
    const written = persister.stats().saves.written;
    const c0 = process.cpuUsage();
    for (let i = 0; i < TICKS; i++) await persister.saveAll();
    const c1 = process.cpuUsage(c0);
    if (persister.stats().saves.written !== written) throw new Error('an idle tick wrote a file');
    const idleUs = (c1.user + c1.system) / TICKS;
    const l0 = process.cpuUsage();
    await legacySave(s, legacyFile);
    const l1 = process.cpuUsage(l0);
    const legacyTickUs = l1.user + l1.system;

    const mb = (b: number): number => b / 1e6;
    return [
      {
        name: 'persist 200k keys: longest event-loop pause',
        value: median(sliced.pause),
        unit: 'ms',
        baseline: median(legacy.pause),
        ratio: median(sliced.pause) / median(legacy.pause),
        target: '≤ 0.1×',
      },
      {
        name: 'persist 200k keys: longest slice (persister stats)',
        value: median(sliced.innerPause),
        unit: 'ms',
        baseline: median(legacy.pause),
        ratio: median(sliced.innerPause) / median(legacy.pause),
      },
      { name: 'persist 200k keys: save wall time', value: median(sliced.time), unit: 'ms', baseline: median(legacy.time), ratio: median(sliced.time) / median(legacy.time) },
      { name: 'persist 200k keys: bytes written', value: mb(sliced.bytes), unit: 'MB', baseline: mb(legacy.bytes), ratio: sliced.bytes / legacy.bytes },
      { name: 'persist 200k keys: heap growth during a save', value: mb(median(sliced.heap)), unit: 'MB', baseline: mb(median(legacy.heap)), ratio: median(sliced.heap) / median(legacy.heap) },
      { name: 'persist idle tick, nothing changed: CPU', value: idleUs, unit: 'µs', baseline: legacyTickUs, ratio: idleUs / legacyTickUs, target: '≈ 0' },
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
