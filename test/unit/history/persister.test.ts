import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { CidrSeries, StringSeries } from '../../../src/series/index.js';
import type { SeriesDefinition } from '../../../src/series/types.js';
import { safeFileName } from '../../../src/history/format.js';
import { SeriesPersister } from '../../../src/history/persister.js';
import { parseStateFile } from '../../../src/history/snapshot-file.js';
import { AuditgateError } from '../../../src/errors.js';

const T0 = Date.UTC(2026, 10, 20, 10, 2, 0); // 10:02 UTC: inside the 10:00-10:05 window of a 300 s series

const DEFS: SeriesDefinition[] = [
  { name: 'connections', type: 'cidr', interval: 300, windows: 6, options: { persist: true } },
  { name: 'rejections:300,6', type: 'cidr', interval: 300, windows: 6, options: { persist: true } },
  { name: 'connections6', type: 'cidr_ipv6', interval: 300, windows: 6, options: { persist: true, store_prefix: 64 } },
  { name: 'mailfrom', type: 'string', interval: 300, windows: 6, options: { persist: true } },
];
const NAMES = DEFS.map((d) => d.name);

interface LogLine {
  level: number;
  msg: string;
  file?: string;
}

function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-persist-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function setup(clock: ManualClock, defs: SeriesDefinition[] = DEFS, names: string[] = NAMES) {
  const registry = new SeriesRegistry(clock);
  for (const d of defs) registry.define(d);
  const log = captureLogger();
  const persister = new SeriesPersister({
    registry,
    stateDir: path.join(dir, 'state'),
    intervalSec: 5,
    logger: log.logger,
    clock,
    seriesNames: () => names,
  });
  return { registry, persister, log };
}

const cidr = (r: SeriesRegistry, n: string) => r.get(n) as CidrSeries;
const str = (r: SeriesRegistry, n: string) => r.get(n) as StringSeries;

function fill(r: SeriesRegistry, clock: ManualClock): void {
  cidr(r, 'connections').add('192.0.2.1', 5);
  cidr(r, 'connections').add('192.0.2.77', 2);
  cidr(r, 'rejections:300,6').add('198.51.100.9', 4);
  cidr(r, 'connections6').add('2001:db8:1:2::5', 3);
  str(r, 'mailfrom').add('example.com', 7);
  clock.advanceSeconds(300); // next window: the counts above are now window 1
  cidr(r, 'connections').add('192.0.2.1', 1);
  cidr(r, 'connections').add('203.0.113.4', 9);
  str(r, 'mailfrom').add('example.org', 2);
}

function files(d: string): string[] {
  return fs.readdirSync(d).sort();
}

describe('SeriesPersister: save and reload', () => {
  it('keeps every count across a restart (same clock)', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();

    const stateDir = path.join(dir, 'state');
    expect(files(stateDir)).toEqual(
      ['connections.json', 'connections6.json', 'mailfrom.json', 'rejections%3A300%2C6.json'].sort(),
    );
    const b = setup(clock);
    const { restored, problems } = b.persister.loadAll();
    expect(problems).toEqual([]);
    expect(restored).toEqual({ connections: 3, 'rejections:300,6': 1, connections6: 1, mailfrom: 2 });

    const c = cidr(b.registry, 'connections');
    expect(c.windowCounts('192.0.2.1')).toEqual([1, 5, 0, 0, 0, 0]);
    expect(c.windowCounts('192.0.2.77')).toEqual([0, 2, 0, 0, 0, 0]);
    expect(c.windowCounts('203.0.113.4')).toEqual([9, 0, 0, 0, 0, 0]);
    expect(c.count('192.0.2.0/24', 0, 5)).toEqual(8);
    expect(cidr(b.registry, 'rejections:300,6').count('198.51.100.9', 1)).toBe(4);
    expect(cidr(b.registry, 'connections6').count('2001:db8:1:2::/64', 1)).toBe(3);
    expect(str(b.registry, 'mailfrom').windowCounts('example.com')).toEqual([0, 7, 0, 0, 0, 0]);
    expect(str(b.registry, 'mailfrom').count('example.org')).toBe(2);
    // the live series and the reloaded one snapshot identically
    for (const n of NAMES) expect(b.registry.snapshot(n)).toEqual(a.registry.snapshot(n));
  });

  it('writes a header with the format version and the time written', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();
    const doc = JSON.parse(fs.readFileSync(a.persister.fileFor('rejections:300,6'), 'utf8')) as Record<string, unknown>;
    expect(doc.format).toBe('auditgate-series-state');
    expect(doc.format_version).toBe(1);
    expect(doc.written_at).toBe(new Date(T0 + 300_000).toISOString());
    expect(doc.series).toBe('rejections:300,6');
    expect(doc.snapshot).toMatchObject({ name: 'rejections:300,6', type: 'cidr', interval: 300, windows: 6 });
  });

  it('drops everything when the clock moved past the coverage while down', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();
    clock.advanceSeconds(6 * 300); // 6 windows of 300 s: every saved window is out of coverage
    const b = setup(clock);
    const { restored, problems } = b.persister.loadAll();
    expect(problems).toEqual([]);
    expect(restored).toEqual({ connections: 0, 'rejections:300,6': 0, connections6: 0, mailfrom: 0 });
    expect(cidr(b.registry, 'connections').count('0.0.0.0/0', 0, 5)).toBe(0);
    expect(cidr(b.registry, 'connections').size()).toBe(0);
    expect(str(b.registry, 'mailfrom').size()).toBe(0);
  });

  it('shifts windows that elapsed while down: window 0 becomes window 1, the oldest drops', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();
    clock.advanceSeconds(300);
    const b = setup(clock);
    expect(b.persister.loadAll().problems).toEqual([]);
    const c = cidr(b.registry, 'connections');
    expect(c.windowCounts('192.0.2.1')).toEqual([0, 1, 5, 0, 0, 0]);
    expect(c.windowCounts('203.0.113.4')).toEqual([0, 9, 0, 0, 0, 0]);

    // four more windows later only the newest saved window is still covered (as window 5)
    clock.advanceSeconds(4 * 300);
    const d = setup(clock);
    d.persister.loadAll();
    expect(cidr(d.registry, 'connections').windowCounts('192.0.2.1')).toEqual([0, 0, 0, 0, 0, 1]);
    expect(cidr(d.registry, 'connections').count('192.0.2.77', 0, 5)).toBe(0);
    expect(cidr(d.registry, 'rejections:300,6').size()).toBe(0);
  });

  it('continues the current window when restarted inside it', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    cidr(a.registry, 'connections').add('192.0.2.1', 3);
    await a.persister.saveAll();
    clock.advanceSeconds(60); // still 10:03, same window
    const b = setup(clock);
    b.persister.loadAll();
    cidr(b.registry, 'connections').add('192.0.2.1', 2);
    expect(cidr(b.registry, 'connections').windowCounts('192.0.2.1')).toEqual([5, 0, 0, 0, 0, 0]);
  });
});

describe('SeriesPersister: bad files', () => {
  async function savedState(clock: ManualClock) {
    const a = setup(clock);
    fill(a.registry, clock);
    await a.persister.saveAll();
    return a;
  }

  function expectSetAside(problems: string[], lines: LogLine[], file: string, reason: RegExp): void {
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(file);
    expect(problems[0]).toMatch(reason);
    expect(problems[0]).toMatch(/moved to .*\.corrupt-\d{8}T\d{6}_\d{3}Z/);
    expect(fs.existsSync(file)).toBe(false);
    const aside = fs.readdirSync(path.dirname(file)).filter((f) => f.startsWith(`${path.basename(file)}.corrupt-`));
    expect(aside).toHaveLength(1);
    const warn = lines.filter((l) => l.level === 40);
    expect(warn).toHaveLength(1);
    expect(warn[0]!.file).toBe(file);
  }

  function expectOthersLoaded(r: SeriesRegistry, except: string): void {
    if (except !== 'connections') expect(cidr(r, 'connections').count('192.0.2.0/24', 0, 5)).toBe(8);
    if (except !== 'mailfrom') expect(str(r, 'mailfrom').count('example.com', 1)).toBe(7);
    if (except !== 'rejections:300,6') expect(cidr(r, 'rejections:300,6').count('198.51.100.9', 1)).toBe(4);
  }

  it('garbage: reported, moved aside, that series empty, the others loaded', async () => {
    const clock = new ManualClock(T0);
    const a = await savedState(clock);
    const file = a.persister.fileFor('connections');
    fs.writeFileSync(file, '\u0000\u0001 this is not json');
    const b = setup(clock);
    const { restored, problems } = b.persister.loadAll();
    expectSetAside(problems, b.log.lines, file, /not valid JSON/);
    expect(restored.connections).toBe(0);
    expect(cidr(b.registry, 'connections').size()).toBe(0);
    expectOthersLoaded(b.registry, 'connections');
    // the next save writes a good file again
    await b.persister.saveAll();
    expect(() => parseStateFile(fs.readFileSync(file, 'utf8'), 'connections')).not.toThrow();
  });

  it('truncated JSON: reported and moved aside', async () => {
    const clock = new ManualClock(T0);
    const a = await savedState(clock);
    const file = a.persister.fileFor('mailfrom');
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.slice(0, Math.floor(text.length / 2)));
    const b = setup(clock);
    const { problems } = b.persister.loadAll();
    expectSetAside(problems, b.log.lines, file, /truncated or corrupt/);
    expect(str(b.registry, 'mailfrom').size()).toBe(0);
    expectOthersLoaded(b.registry, 'mailfrom');
  });

  it('series type changed in the config: reported as a mismatch', async () => {
    const clock = new ManualClock(T0);
    const a = await savedState(clock);
    const file = a.persister.fileFor('connections');
    const defs = DEFS.map((d) => (d.name === 'connections' ? { ...d, type: 'string' as const } : d));
    const b = setup(clock, defs);
    const { problems } = b.persister.loadAll();
    expectSetAside(problems, b.log.lines, file, /snapshot is cidr\/300s, series is string\/300s/);
    expect(str(b.registry, 'connections').size()).toBe(0);
    expectOthersLoaded(b.registry, 'connections');
  });

  it('interval changed: reported as a mismatch', async () => {
    const clock = new ManualClock(T0);
    const a = await savedState(clock);
    const file = a.persister.fileFor('rejections:300,6');
    const defs = DEFS.map((d) => (d.name === 'rejections:300,6' ? { ...d, interval: 60 } : d));
    const b = setup(clock, defs);
    const { problems } = b.persister.loadAll();
    expectSetAside(problems, b.log.lines, file, /snapshot is cidr\/300s, series is cidr\/60s/);
    expectOthersLoaded(b.registry, 'rejections:300,6');
  });

  it('wrong shape (valid JSON, bad entries or another series): reported', async () => {
    const clock = new ManualClock(T0);
    const a = await savedState(clock);
    const file = a.persister.fileFor('connections');
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { snapshot: { entries: unknown[] } };
    doc.snapshot.entries.push(['192.0.2.9', 'not counts']);
    fs.writeFileSync(file, JSON.stringify(doc));
    // the mailfrom file swapped for the connections one: it names another series
    fs.copyFileSync(a.persister.fileFor('rejections:300,6'), a.persister.fileFor('mailfrom'));
    const b = setup(clock);
    const { problems } = b.persister.loadAll();
    expect(problems).toHaveLength(2);
    expect(problems.find((p) => p.includes(file))).toMatch(/entry 3 is not \[key, \[counts…\]\]/);
    expect(problems.find((p) => p.includes(b.persister.fileFor('mailfrom')))).toMatch(
      /holds series "rejections:300,6", expected "mailfrom"/,
    );
    expect(cidr(b.registry, 'connections').size()).toBe(0);
    expect(cidr(b.registry, 'rejections:300,6').count('198.51.100.9', 1)).toBe(4);
  });

  it('a missing file is not a problem; a series that is not defined is', () => {
    const clock = new ManualClock(T0);
    const b = setup(clock, DEFS, [...NAMES, 'ghost']);
    const { restored, problems } = b.persister.loadAll();
    expect(restored).toEqual({ connections: 0, 'rejections:300,6': 0, connections6: 0, mailfrom: 0, ghost: 0 });
    expect(problems).toEqual([`${b.persister.fileFor('ghost')}: series "ghost" is not defined; state not loaded`]);
  });
});

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

describe('SeriesPersister: timer and stop', () => {
  it('saves periodically and once more at stop', async () => {
    const clock = new ManualClock(T0);
    const registry = new SeriesRegistry(clock);
    const c = registry.define(DEFS[0]!) as CidrSeries;
    const persister = new SeriesPersister({
      registry,
      stateDir: path.join(dir, 'state'),
      intervalSec: 0.05,
      logger: pino({ level: 'silent' }),
      clock,
      seriesNames: () => ['connections'],
    });
    c.add('192.0.2.1', 4);
    persister.start();
    const file = persister.fileFor('connections');
    await vi.waitFor(
      () => {
        expect(parseStateFile(fs.readFileSync(file, 'utf8'), 'connections').snapshot.entries).toEqual([
          ['192.0.2.1', [4, 0, 0, 0, 0, 0]],
        ]);
      },
      { timeout: 5000, interval: 20 },
    );
    c.add('192.0.2.2', 6);
    await persister.stop();
    const state = parseStateFile(fs.readFileSync(file, 'utf8'), 'connections');
    expect(state.snapshot.entries).toEqual([
      ['192.0.2.1', [4, 0, 0, 0, 0, 0]],
      ['192.0.2.2', [6, 0, 0, 0, 0, 0]],
    ]);
  });

  it('rejects a non-positive interval', () => {
    const clock = new ManualClock(T0);
    expect(
      () =>
        new SeriesPersister({
          registry: new SeriesRegistry(clock),
          stateDir: dir,
          intervalSec: 0,
          logger: pino({ level: 'silent' }),
          clock,
          seriesNames: () => [],
        }),
    ).toThrow(/positive/);
  });
});
