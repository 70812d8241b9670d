import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import { parseStateFile } from '../../../src/history/snapshot-file.js';
import { T0, DEFS, NAMES, dir, setup, cidr, str, fill, files, type LogLine } from './persister-helpers.js';

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
