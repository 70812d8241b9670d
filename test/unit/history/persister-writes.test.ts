import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { CidrSeries } from '../../../src/series/index.js';
import { safeFileName } from '../../../src/history/format.js';
import { SeriesPersister } from '../../../src/history/persister.js';
import { parseStateFile } from '../../../src/history/snapshot-file.js';
import { AuditgateError } from '../../../src/errors.js';
import { T0, DEFS, NAMES, dir, setup, cidr, str, fill, files } from './persister-helpers.js';

describe('SeriesPersister: atomic writes', () => {
  it('leaves only the target files, each valid JSON, after repeated saves', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();
    cidr(a.registry, 'connections').add('192.0.2.200', 11);
    await Promise.all([a.persister.saveAll(), a.persister.saveAll()]);
    const stateDir = path.join(dir, 'state');
    expect(files(stateDir)).toEqual(NAMES.map((n) => `${safeFileName(n)}.json`).sort());
    for (const n of NAMES) {
      const state = parseStateFile(fs.readFileSync(a.persister.fileFor(n), 'utf8'), n);
      expect(state.snapshot.name).toBe(n);
    }
    const conn = parseStateFile(fs.readFileSync(a.persister.fileFor('connections'), 'utf8'), 'connections');
    expect(conn.snapshot.entries).toContainEqual(['192.0.2.200', [11, 0, 0, 0, 0, 0]]);
  });

  it('a reader during a large save always sees a complete file (old or new)', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock, [DEFS[0]!], ['connections']);
    const c = cidr(a.registry, 'connections');
    for (let i = 0; i < 60_000; i++) c.add(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    await a.persister.saveAll();
    for (let i = 0; i < 60_000; i++) c.add(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    const file = a.persister.fileFor('connections');
    let done = false;
    let reads = 0;
    const saving = a.persister.saveAll().finally(() => {
      done = true;
    });
    const seen = new Set<number>();
    while (!done) {
      const state = parseStateFile(fs.readFileSync(file, 'utf8'), 'connections'); // throws on a partial file
      expect(state.snapshot.entries).toHaveLength(60_000);
      seen.add(state.snapshot.entries[0]![1][0]!);
      reads++;
      await new Promise((r) => setImmediate(r));
    }
    await saving;
    expect(reads).toBeGreaterThan(1); // the save yielded to the event loop while writing
    const final = parseStateFile(fs.readFileSync(file, 'utf8'), 'connections');
    expect(final.snapshot.entries[0]![1][0]).toBe(2);
    expect([...seen].every((v) => v === 1 || v === 2)).toBe(true);
  });

  it('removes temp files left by a save that was killed', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();
    const stateDir = path.join(dir, 'state');
    const stale = path.join(stateDir, 'connections.json.tmp-99999-3');
    fs.writeFileSync(stale, '{"format":"auditgate-series-state","form');
    const b = setup(clock);
    expect(b.persister.loadAll().problems).toEqual([]);
    expect(fs.existsSync(stale)).toBe(false);
    expect(cidr(b.registry, 'connections').count('192.0.2.0/24', 0, 5)).toBe(8);
  });

  it('a failed save rejects with AG_PERSIST naming the series, saves the others, leaves no temp file', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock, [DEFS[0]!, DEFS[3]!], ['connections', 'mailfrom']);
    cidr(a.registry, 'connections').add('192.0.2.1', 1);
    str(a.registry, 'mailfrom').add('example.com', 2);
    // the target path is a (non-empty) directory: the rename over it fails, even for root
    const target = a.persister.fileFor('connections');
    fs.mkdirSync(path.join(target, 'blocker'), { recursive: true });
    const err = await a.persister.saveAll().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AuditgateError);
    expect((err as AuditgateError).code).toBe('AG_PERSIST');
    expect((err as Error).message).toContain('"connections"');
    expect((err as Error).message).not.toContain('"mailfrom"');
    expect(files(path.join(dir, 'state'))).toEqual(['connections.json', 'mailfrom.json']);
    expect(fs.statSync(target).isDirectory()).toBe(true);
    const state = parseStateFile(fs.readFileSync(a.persister.fileFor('mailfrom'), 'utf8'), 'mailfrom');
    expect(state.snapshot.entries).toEqual([['example.com', [2, 0, 0, 0, 0, 0]]]);
    expect(a.log.lines.some((l) => l.level === 50 && l.msg === 'series state save failed' && l.file === target)).toBe(true);
  });
});

describe('SeriesPersister: only what changed, a slice at a time', () => {
  it('a save with nothing changed writes nothing; a change writes the file again', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();
    expect(a.persister.stats().saves).toEqual({ written: 4, skipped: 0, failed: 0 });
    const file = a.persister.fileFor('connections');
    const before = fs.statSync(file);
    const first = a.persister.stats().last!;
    expect(first.files).toBe(4);
    expect(first.entries).toBe(3 + 1 + 1 + 2);
    const sizes = NAMES.reduce((n, name) => n + fs.statSync(a.persister.fileFor(name)).size, 0);
    expect(first.bytes).toBe(sizes);

    clock.advanceSeconds(1);
    await a.persister.saveAll();
    await a.persister.saveAll();
    const after = fs.statSync(file);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(a.persister.stats().saves).toEqual({ written: 4, skipped: 8, failed: 0 });
    expect(a.persister.stats().last).toEqual(first); // the last save that wrote something
    expect(files(path.join(dir, 'state'))).toEqual(NAMES.map((n) => `${safeFileName(n)}.json`).sort());

    // counts that only age out are not a change: the file restores to the same thing
    clock.advanceSeconds(300);
    await a.persister.saveAll();
    expect(fs.statSync(file).ino).toBe(before.ino);

    cidr(a.registry, 'connections').add('192.0.2.1');
    await a.persister.saveAll();
    expect(a.persister.stats().saves).toEqual({ written: 5, skipped: 15, failed: 0 });
    expect(fs.statSync(file).ino).not.toBe(before.ino);
    const state = parseStateFile(fs.readFileSync(file, 'utf8'), 'connections');
    expect(state.snapshot.entries).toContainEqual(['192.0.2.1', [1, 1, 5, 0, 0, 0]]);
    // removals are changes too
    str(a.registry, 'mailfrom').removeItem('example.org');
    await a.persister.saveAll();
    expect(parseStateFile(fs.readFileSync(a.persister.fileFor('mailfrom'), 'utf8'), 'mailfrom').snapshot.entries).toEqual([
      ['example.com', [0, 0, 7, 0, 0, 0]],
    ]);
  });

  it('a series just loaded from its file is not written again until it changes', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();
    const ino = fs.statSync(a.persister.fileFor('connections')).ino;
    const b = setup(clock);
    b.persister.loadAll();
    await b.persister.saveAll();
    expect(b.persister.stats().saves).toEqual({ written: 0, skipped: 4, failed: 0 });
    expect(fs.statSync(b.persister.fileFor('connections')).ino).toBe(ino);
    cidr(b.registry, 'connections').add('192.0.2.9');
    await b.persister.saveAll();
    expect(b.persister.stats().saves).toEqual({ written: 1, skipped: 7, failed: 0 });
  });

  /** 10 keys in the current window, saved 2 keys per slice; `hook` runs after the first slice. */
  async function slicedSave(hook: (c: CidrSeries, clock: ManualClock) => void) {
    const clock = new ManualClock(T0);
    const registry = new SeriesRegistry(clock);
    const c = registry.define(DEFS[0]!) as CidrSeries;
    for (let i = 0; i < 10; i++) c.add(`192.0.2.${i}`, i + 1);
    let slices = 0;
    const persister = new SeriesPersister({
      registry,
      stateDir: path.join(dir, 'state'),
      intervalSec: 5,
      logger: pino({ level: 'silent' }),
      clock,
      seriesNames: () => ['connections'],
      sliceEntries: 2,
      onSlice: () => {
        if (++slices === 1) hook(c, clock);
      },
    });
    await persister.saveAll();
    const text = fs.readFileSync(persister.fileFor('connections'), 'utf8');
    const state = parseStateFile(text, 'connections');
    const restoredRegistry = new SeriesRegistry(clock);
    const r = restoredRegistry.define(DEFS[0]!) as CidrSeries;
    r.restore(state.snapshot);
    return { state, c, r, clock, persister, slices };
  }

  it('a window rotating in the middle of a sliced save: the file restores to the right counts', async () => {
    const { state, c, r, slices } = await slicedSave((s, clock) => {
      clock.advanceSeconds(300); // window 0 of the save becomes window 1
      s.add('192.0.2.0', 100); // copied already: this add waits for the next save
      s.add('192.0.2.9', 100); // not copied yet: its newer window is not in this save either
    });
    expect(slices).toBe(5);
    expect(state.snapshot.window).toBe(Math.floor(T0 / 300_000));
    const keys = state.snapshot.entries.map(([k]) => k);
    expect(new Set(keys).size).toBe(10);
    for (let i = 0; i < 10; i++) {
      expect(r.windowCounts(`192.0.2.${i}`)).toEqual([0, i + 1, 0, 0, 0, 0]);
      expect(c.count(`192.0.2.${i}`, 1)).toBe(i + 1);
    }
    expect(r.count('192.0.2.0/24', 0, 5)).toBe(55);
  });

  it('every window elapsing in the middle of a save: nothing stale and nothing newer is saved', async () => {
    const { state, r } = await slicedSave((s, clock) => {
      clock.advanceSeconds(6 * 300);
      s.add('192.0.2.0', 100);
      s.add('192.0.2.7', 100);
      s.add('203.0.113.1', 100);
    });
    // the first slice was copied before: its two keys, as they were then
    expect(state.snapshot.entries.map(([k]) => k)).toEqual(['192.0.2.0', '192.0.2.1']);
    expect(r.size()).toBe(0); // by now those windows are out of coverage as well
  });

  it('keys removed, re-added or new during a save appear at most once, as of their copy', async () => {
    const { state } = await slicedSave((s) => {
      s.removeItem('192.0.2.0'); // copied in the first slice, then removed and added again (a new id)
      s.add('192.0.2.0', 50);
      s.removeItem('192.0.2.5'); // not copied yet: gone
      s.add('198.51.100.1', 7); // new: not in this save
      s.add('192.0.2.4', 1000); // not copied yet: copied as it is when its slice comes
    });
    const entries = new Map(state.snapshot.entries.map(([k, c]) => [k, c] as const));
    expect(state.snapshot.entries).toHaveLength(9);
    expect(entries.get('192.0.2.0')).toEqual([1, 0, 0, 0, 0, 0]);
    expect(entries.has('192.0.2.5')).toBe(false);
    expect(entries.has('198.51.100.1')).toBe(false);
    expect(entries.get('192.0.2.4')).toEqual([1005, 0, 0, 0, 0, 0]);
  });

  it('the save changed nothing it does not own: ids are reused and compaction runs again afterwards', async () => {
    const { c, persister } = await slicedSave((s) => {
      for (let i = 0; i < 5; i++) s.removeItem(`192.0.2.${i}`);
    });
    expect(c.size()).toBe(5);
    expect(c.compact()).toBe(true);
    const before = c.memoryBytes();
    for (let i = 0; i < 5; i++) c.add(`10.0.0.${i}`);
    expect(c.memoryBytes()).toBe(before); // the freed ids were handed back after the save
    expect(persister.stats().saves.written).toBe(1);
  });
});
