/**
 * Distinct series on disk: state files (snapshot version 2, every key's sets per window) that
 * restore the same distinct counts, also a window later; series log lines that carry the sets;
 * history that unites windows and keys instead of adding their counts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { CidrSeries, DistinctCidrSeries, DistinctStringSeries } from '../../../src/series/index.js';
import { SeriesPersister } from '../../../src/history/persister.js';
import { parseStateFile } from '../../../src/history/snapshot-file.js';
import { SeriesLogWriter } from '../../../src/history/log-writer.js';
import { queryHistory } from '../../../src/history/log-query.js';
import type { SeriesDefinition } from '../../../src/series/types.js';
import { DistinctSketch } from '../../../src/series/distinct.js';
import { historyCommand } from '../../../src/cli/history.js';

const T0 = Date.UTC(2026, 10, 20, 10, 2, 0);
const DEFS: SeriesDefinition[] = [
  { name: 'dest', type: 'cidr', interval: 300, windows: 4, options: { persist: true, serialize: true, distinct: true, levels: [24] } },
  { name: 'nets', type: 'string', interval: 300, windows: 4, options: { persist: true, serialize: true, distinct: true } },
  { name: 'conn', type: 'cidr', interval: 300, windows: 4, options: { serialize: true } },
];
const NAMES = ['dest', 'nets', 'conn'];

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-distinct-history-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function setup(clock: ManualClock, defs = DEFS) {
  const registry = new SeriesRegistry(clock);
  for (const d of defs) registry.define(d);
  const persister = new SeriesPersister({
    registry,
    stateDir: path.join(dir, 'state'),
    intervalSec: 5,
    logger: pino({ level: 'silent' }),
    clock,
    seriesNames: () => ['dest', 'nets'],
  });
  const writer = new SeriesLogWriter({ registry, logDir: path.join(dir, 'log'), retentionSec: 30 * 86_400, logger: pino({ level: 'silent' }), clock, seriesNames: () => NAMES });
  return { registry, persister, writer, dest: registry.get('dest') as DistinctCidrSeries, nets: registry.get('nets') as DistinctStringSeries };
}

/** Window 1: 192.0.2.1 {a b}, 192.0.2.2 {b c}; window 0: 192.0.2.1 {c d}, 198.51.100.1 {a} and 200 values on 192.0.2.3. */
function fill(s: ReturnType<typeof setup>, clock: ManualClock): void {
  for (const v of ['a', 'b']) s.dest.addValue('192.0.2.1', `${v}@x`);
  for (const v of ['b', 'c']) s.dest.addValue('192.0.2.2', `${v}@x`);
  s.nets.addValue('alice', '192.0.2.0/24');
  clock.advanceSeconds(300);
  for (const v of ['c', 'd']) s.dest.addValue('192.0.2.1', `${v}@x`);
  s.dest.addValue('198.51.100.1', 'a@x');
  for (let i = 0; i < 200; i++) s.dest.addValue('192.0.2.3', `bulk${i}@x`);
  s.nets.addValue('alice', '2001:db8::/64');
  (s.registry.get('conn') as CidrSeries).add('192.0.2.1', 3);
}

describe('distinct series state files', () => {
  it('restore the same distinct counts, a window later too', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a, clock);
    await a.persister.saveAll();
    const state = parseStateFile(fs.readFileSync(a.persister.fileFor('dest'), 'utf8'), 'dest');
    expect(state.snapshot.version).toBe(2);
    const entry = state.snapshot.entries.find((e) => e[0] === '192.0.2.1')!;
    expect(entry[1]).toEqual([2, 2, 0, 0]);
    expect(entry[2]!.map((s) => (s === null ? null : Object.keys(s)))).toEqual([['v', 'exact'], ['v', 'exact'], null, null]);

    const want = (s: ReturnType<typeof setup>) => [
      s.dest.count('192.0.2.1', 0, 3),
      s.dest.count('192.0.2.0/24', 0, 3),
      s.dest.count('192.0.2.0/25', 0, 1),
      s.dest.count('0.0.0.0/0', 0, 3),
      s.dest.count('192.0.2.3'),
      s.nets.count('alice', 0, 3),
    ];
    const wa = want(a);
    expect([wa[0], wa[5]]).toEqual([4, 2]);
    const b = setup(clock);
    const { problems } = b.persister.loadAll();
    expect(problems).toEqual([]);
    expect(want(b)).toEqual(wa);
    expect(b.dest.windowCounts('192.0.2.1')).toEqual([2, 2, 0, 0]);

    clock.advanceSeconds(300); // restored a window later: everything moved back one window
    const c = setup(clock);
    c.persister.loadAll();
    expect(c.dest.windowCounts('192.0.2.1')).toEqual([0, 2, 2, 0]);
    expect(c.dest.count('192.0.2.0/24', 1, 2)).toBe(b.dest.count('192.0.2.0/24', 1, 2)); // b aged a window meanwhile, c restored into it
  });

  it('a distinct snapshot does not restore into a counting series (the file is set aside)', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a, clock);
    await a.persister.saveAll();
    const counting = DEFS.map((d) => (d.name === 'dest' ? { ...d, options: { persist: true } } : d));
    const b = setup(clock, counting);
    const { problems } = b.persister.loadAll();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/dest\.json: series state not restored \(series "dest": snapshot version 2 holds distinct sets, the series counts events \(version 1\)\); moved to /);
  });
});

describe('distinct series in the series log and history', () => {
  it('log the sets of each closed window; history unites windows and prefixes', async () => {
    const clock = new ManualClock(T0);
    const s = setup(clock);
    s.writer.start();
    fill(s, clock);
    clock.advanceSeconds(300);
    s.writer.tick();
    await s.writer.stop();
    const day = path.join(dir, 'log', 'dest', '2026-11-20.jsonl');
    const lines = fs.readFileSync(day, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ distinct: true, counts: { '192.0.2.1': 2, '192.0.2.2': 2 } });
    expect(Object.keys(lines[0]!.sets as object).sort()).toEqual(['192.0.2.1', '192.0.2.2']);

    const q = { logDir: path.join(dir, 'log'), from: new Date(T0 - 3600_000), to: new Date(T0 + 3600_000) };
    const perKey = await queryHistory({ ...q, series: ['dest'] });
    expect(perKey.find((r) => r.key === '192.0.2.1')).toEqual({ key: '192.0.2.1', count: 4 }); // a b | c d
    const by24 = await queryHistory({ ...q, series: ['dest'], groupBy: 24 });
    const bulk = by24.find((r) => r.key === '192.0.2.0/24')!;
    expect(Math.abs(bulk.count - 204) / 204).toBeLessThan(0.02); // a b c d and 200 bulk values
    expect(by24.find((r) => r.key === '198.51.100.0/24')).toEqual({ key: '198.51.100.0/24', count: 1 });
    expect(await queryHistory({ ...q, series: ['nets'] })).toEqual([{ key: 'alice', count: 2 }]);
    await expect(queryHistory({ ...q, series: ['dest', 'conn'] })).rejects.toThrow(/mix distinct series .* and counting series/);

    // the total is the distinct values over all rows: a b c d and the 200 bulk values, not the rows' sum
    const union = new DistinctSketch();
    for (const v of ['a', 'b', 'c', 'd']) union.add(`${v}@x`);
    for (let i = 0; i < 200; i++) union.add(`bulk${i}@x`);
    const out: string[] = [];
    const argv = ['--log-dir', q.logDir, '--series', 'dest', '--from', q.from.toISOString(), '--to', q.to.toISOString(), '--json'];
    expect(await historyCommand(argv, (l) => out.push(l))).toBe(0);
    const answer = JSON.parse(out[0]!) as { total: number; rows: Array<{ count: number }> };
    expect(answer.total).toBe(union.count());
    expect(answer.rows.reduce((n, r) => n + r.count, 0)).toBeGreaterThan(answer.total); // .1 and .2 share b c, 198.51.100.1 repeats a
  });

  it('a restored distinct window that closed while the gateway was down is logged with its sets', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    for (const v of ['a', 'b', 'c']) a.dest.addValue('192.0.2.9', `${v}@x`);
    await a.persister.saveAll();
    clock.advanceSeconds(600);
    const b = setup(clock);
    b.persister.onRestored = (snap) => b.writer.restoredWindow(snap);
    b.writer.start();
    b.persister.loadAll();
    await b.writer.stop();
    const rows = await queryHistory({ logDir: path.join(dir, 'log'), series: ['dest'], from: new Date(T0 - 3600_000), to: new Date(T0 + 3600_000) });
    expect(rows).toEqual([{ key: '192.0.2.9', count: 3 }]);
  });
});
