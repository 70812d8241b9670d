import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { CidrSeries, StringSeries } from '../../../src/series/index.js';
import type { WindowLogLine } from '../../../src/history/format.js';
import { SeriesLogWriter } from '../../../src/history/log-writer.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 20, 23, 52, 0); // 23:52 UTC: the 23:50-23:55 window of a 300 s series

let dir: string;
let writers: SeriesLogWriter[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-serialize-'));
});
afterEach(async () => {
  for (const w of writers) await w.stop();
  writers = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

function setup(clock: ManualClock, retentionSec = 7 * 86_400) {
  const registry = new SeriesRegistry(clock);
  const rej = registry.define({ name: 'rejections:300,6', type: 'cidr', interval: 300, windows: 6 }) as CidrSeries;
  const helo = registry.define({ name: 'helo', type: 'string', interval: 60, windows: 3 }) as StringSeries;
  const quiet = registry.define({ name: 'not-serialized', type: 'cidr', interval: 300, windows: 6 }) as CidrSeries;
  const logDir = path.join(dir, 'log');
  const writer = new SeriesLogWriter({
    registry,
    logDir,
    retentionSec,
    logger: pino({ level: 'silent' }),
    clock,
    seriesNames: () => ['rejections:300,6', 'helo'],
  });
  writers.push(writer);
  return { registry, rej, helo, quiet, writer, logDir };
}

function readLines(file: string): WindowLogLine[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as WindowLogLine);
}

describe('SeriesLogWriter', () => {
  it('appends one JSON line per closed window, in the file of its UTC day', async () => {
    const clock = new ManualClock(T0);
    const { rej, helo, quiet, writer, logDir } = setup(clock);
    writer.start();
    rej.add('192.0.2.1', 3);
    rej.add('192.0.2.2');
    rej.add('2001:db8::1'); // another family: ignored by a cidr series
    quiet.add('192.0.2.1', 5);
    helo.add('mx.example.com', 2);

    clock.set(Date.UTC(2026, 10, 20, 23, 55, 1)); // the 23:50 window closed; helo's 23:52 minute too
    writer.tick();
    await writer.flush();

    const dayFile = path.join(logDir, 'rejections%3A300%2C6', '2026-11-20.jsonl');
    expect(readLines(dayFile)).toEqual([
      {
        series: 'rejections:300,6',
        type: 'cidr',
        window: Date.UTC(2026, 10, 20, 23, 50) / 300_000,
        start: '2026-11-20T23:50:00.000Z',
        end: '2026-11-20T23:55:00.000Z',
        interval: 300,
        counts: { '192.0.2.1': 3, '192.0.2.2': 1 },
      },
    ]);
    expect(readLines(path.join(logDir, 'helo', '2026-11-20.jsonl'))).toEqual([
      {
        series: 'helo',
        type: 'string',
        window: Date.UTC(2026, 10, 20, 23, 52) / 60_000,
        start: '2026-11-20T23:52:00.000Z',
        end: '2026-11-20T23:53:00.000Z',
        interval: 60,
        counts: { 'mx.example.com': 2 },
      },
    ]);
    expect(fs.readdirSync(logDir).sort()).toEqual(['helo', 'rejections%3A300%2C6']);

    // the window from 23:55 goes to the 20th, the one from 00:00 to the 21st
    rej.add('198.51.100.1', 4);
    clock.set(Date.UTC(2026, 10, 21, 0, 0, 0));
    writer.tick();
    rej.add('198.51.100.1', 6);
    rej.add('203.0.113.9', 1);
    clock.set(Date.UTC(2026, 10, 21, 0, 7, 0)); // 00:00 closes; 00:05 stays open (empty anyway)
    writer.tick();
    await writer.flush();
    const day20 = readLines(dayFile);
    expect(day20.map((l) => [l.start, l.counts])).toEqual([
      ['2026-11-20T23:50:00.000Z', { '192.0.2.1': 3, '192.0.2.2': 1 }],
      ['2026-11-20T23:55:00.000Z', { '198.51.100.1': 4 }],
    ]);
    const day21 = readLines(path.join(logDir, 'rejections%3A300%2C6', '2026-11-21.jsonl'));
    expect(day21.map((l) => [l.start, l.end, l.counts])).toEqual([
      ['2026-11-21T00:00:00.000Z', '2026-11-21T00:05:00.000Z', { '198.51.100.1': 6, '203.0.113.9': 1 }],
    ]);
    // every line is a whole line
    expect(fs.readFileSync(dayFile, 'utf8').endsWith('}\n')).toBe(true);
  });

  it('writes no line for a window without counts', async () => {
    const clock = new ManualClock(T0);
    const { writer, logDir } = setup(clock);
    writer.start();
    clock.advanceSeconds(3600);
    writer.tick();
    await writer.flush();
    expect(fs.existsSync(logDir)).toBe(false);
  });

  it('ends a line torn by a crash before appending, so the next line stays readable', async () => {
    const clock = new ManualClock(T0);
    const { rej, writer, logDir } = setup(clock);
    const file = path.join(logDir, 'rejections%3A300%2C6', '2026-11-20.jsonl');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '{"series":"rejections:300,6","type":"cidr","wind');
    writer.start();
    rej.add('192.0.2.1', 2);
    clock.advanceSeconds(300);
    writer.tick();
    await writer.flush();
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('{"series":"rejections:300,6","type":"cidr","wind');
    expect((JSON.parse(lines[1]!) as WindowLogLine).counts).toEqual({ '192.0.2.1': 2 });
    expect(lines[2]).toBe('');
  });

  it('follows the series list: a series dropped from serialize stops logging', async () => {
    const clock = new ManualClock(T0);
    const registry = new SeriesRegistry(clock);
    const a = registry.define({ name: 'a', type: 'string', interval: 60, windows: 2 }) as StringSeries;
    let names = ['a'];
    const writer = new SeriesLogWriter({
      registry,
      logDir: path.join(dir, 'log'),
      retentionSec: 86_400,
      logger: pino({ level: 'silent' }),
      clock,
      seriesNames: () => names,
    });
    writers.push(writer);
    writer.start();
    a.add('x');
    clock.advanceSeconds(60);
    writer.tick();
    names = [];
    writer.tick();
    a.add('y');
    clock.advanceSeconds(60);
    a.currentWindow();
    writer.tick();
    await writer.flush();
    expect(readLines(path.join(dir, 'log', 'a', '2026-11-20.jsonl')).map((l) => l.counts)).toEqual([{ x: 1 }]);
  });

  it('stop closes the windows that are due and writes them', async () => {
    const clock = new ManualClock(T0);
    const { rej, writer, logDir } = setup(clock);
    writer.start();
    rej.add('192.0.2.1', 7);
    clock.advanceSeconds(300);
    await writer.stop(); // no tick since the boundary: stop closes it
    expect(readLines(path.join(logDir, 'rejections%3A300%2C6', '2026-11-20.jsonl')).map((l) => l.counts)).toEqual([
      { '192.0.2.1': 7 },
    ]);
    // after stop nothing is listening any more
    rej.add('192.0.2.1', 1);
    clock.advanceSeconds(300);
    rej.currentWindow();
    await writer.flush();
    expect(readLines(path.join(logDir, 'rejections%3A300%2C6', '2026-11-20.jsonl'))).toHaveLength(1);
  });

  it('prunes whole day files older than the retention, for every series, and nothing else', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 20, 12, 0, 0));
    const { writer, logDir } = setup(clock, 2 * 86_400);
    const mk = (series: string, file: string) => {
      fs.mkdirSync(path.join(logDir, series), { recursive: true });
      fs.writeFileSync(path.join(logDir, series, file), '{}\n');
    };
    for (const d of ['2026-11-16', '2026-11-17', '2026-11-18', '2026-11-19', '2026-11-20']) mk('helo', `${d}.jsonl`);
    mk('old-series', '2026-10-01.jsonl');
    mk('old-series', 'notes.txt');
    // cutoff = 2026-11-18T12:00Z: a day goes once its end (next midnight) is at or before the cutoff
    const deleted = await writer.prune();
    expect(deleted.map((p) => path.relative(logDir, p)).sort()).toEqual(
      ['helo/2026-11-16.jsonl', 'helo/2026-11-17.jsonl', 'old-series/2026-10-01.jsonl'].sort(),
    );
    expect(fs.readdirSync(path.join(logDir, 'helo')).sort()).toEqual([
      '2026-11-18.jsonl',
      '2026-11-19.jsonl',
      '2026-11-20.jsonl',
    ]);
    expect(fs.readdirSync(path.join(logDir, 'old-series'))).toEqual(['notes.txt']);

    clock.advance(DAY / 2); // 2026-11-21T00:00Z: the 18th has fully aged out
    expect((await writer.prune()).map((p) => path.basename(p))).toEqual(['2026-11-18.jsonl']);
  });

  it('start() prunes right away', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 20, 12, 0, 0));
    const { writer, logDir } = setup(clock, 86_400);
    fs.mkdirSync(path.join(logDir, 'helo'), { recursive: true });
    fs.writeFileSync(path.join(logDir, 'helo', '2026-11-01.jsonl'), '{}\n');
    writer.start();
    await writer.stop();
    expect(fs.readdirSync(path.join(logDir, 'helo'))).toEqual([]);
  });
});
