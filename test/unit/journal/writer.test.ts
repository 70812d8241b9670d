/** The journal's day files: buffered appends, day rotation, restarts, torn lines, the bound, retention, modes. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { JournalWriter, type JournalWriterOptions } from '../../../src/journal/writer.js';

const T0 = Date.UTC(2026, 10, 20, 23, 59, 58);
let dir: string;
const writers: JournalWriter[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-journal-'));
});
afterEach(async () => {
  for (const w of writers.splice(0)) await w.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function logs(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

function writer(clock: ManualClock, opts: Partial<JournalWriterOptions> = {}): JournalWriter {
  const w = new JournalWriter({ dir: path.join(dir, 'journal'), retentionSec: 7 * 86_400, clock, logger: pino({ level: 'silent' }), ...opts });
  writers.push(w);
  return w;
}

const read = (file: string): string => fs.readFileSync(file, 'utf8');

describe('JournalWriter', () => {
  it('buffers lines and appends them to the file of the UTC day they came in, files 0640 in a 0750 directory', async () => {
    const old = process.umask(0o022);
    try {
      const clock = new ManualClock(T0);
      const w = writer(clock);
      w.append('{"a":1}\n');
      w.append('{"a":2}\n');
      expect(fs.existsSync(w.fileFor(T0))).toBe(false); // nothing written while appending
      clock.advance(3000); // past midnight
      w.append('{"a":3}\n');
      await w.flush();
      expect(read(w.fileFor(T0))).toBe('{"a":1}\n{"a":2}\n');
      expect(path.basename(w.fileFor(clock.now()))).toBe('2026-11-21.jsonl');
      expect(read(w.fileFor(clock.now()))).toBe('{"a":3}\n');
      expect(fs.statSync(w.fileFor(T0)).mode & 0o777).toBe(0o640);
      expect(fs.statSync(path.join(dir, 'journal')).mode & 0o777).toBe(0o750);
      expect(w.stats()).toEqual({ lines: 3, dropped: 0, writeErrors: 0, writes: 2, bufferedBytes: 0 });
    } finally {
      process.umask(old);
    }
  });

  it('writes on its own, without flush(), shortly after the first line', async () => {
    const clock = new ManualClock(T0);
    const w = writer(clock, { flushMs: 5 });
    w.append('{"a":1}\n');
    for (let i = 0; i < 500 && w.stats().lines === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(read(w.fileFor(T0))).toBe('{"a":1}\n');
  });

  it('lines that come while a write is in flight wait for flushBytes or flushMs, not one write each', async () => {
    const clock = new ManualClock(T0);
    const w = writer(clock, { flushBytes: 100, flushMs: 60_000 });
    const big = `{"pad":"${'x'.repeat(120)}"}\n`;
    w.append(big); // over flushBytes: written at once
    for (const i of [1, 2, 3]) w.append(`{"a":${i}}\n`); // while that write is in flight
    for (let i = 0; i < 200 && w.stats().lines < 4; i++) await new Promise((r) => setTimeout(r, 10));
    expect(w.stats()).toMatchObject({ lines: 1, writes: 1 }); // the three wait (a write each, before)
    w.append(big); // over flushBytes again: the four go in one write
    for (let i = 0; i < 500 && w.stats().lines < 5; i++) await new Promise((r) => setTimeout(r, 10));
    expect(w.stats()).toMatchObject({ lines: 5, writes: 2 });
    expect(read(w.fileFor(T0))).toBe(`${big}{"a":1}\n{"a":2}\n{"a":3}\n${big}`);
  });

  it('a restart continues the day file; a last line torn by a kill is ended first and logged', async () => {
    const clock = new ManualClock(T0);
    const first = writer(clock);
    first.append('{"a":1}\n');
    await first.close();
    fs.appendFileSync(first.fileFor(T0), '{"a":2,"tor'); // killed mid-line
    const { logger, lines } = logs();
    const second = writer(clock, { logger });
    second.append('{"a":3}\n');
    await second.flush();
    expect(read(first.fileFor(T0))).toBe('{"a":1}\n{"a":2,"tor\n{"a":3}\n');
    expect(lines.some((l) => String(l.msg).includes('torn'))).toBe(true);
  });

  it('writes every line byte for byte: multibyte text, lines longer than a buffer segment, many segments in one write', async () => {
    const clock = new ManualClock(T0);
    const w = writer(clock, { flushBytes: 1 << 30, flushMs: 60_000 });
    const lines = [
      '{"h":"é…\u{1F600}\u0000x"}\n',
      `{"h":"${'ü'.repeat(100_000)}"}\n`, // 200 kB of UTF-8: past one segment
      ...Array.from({ length: 3000 }, (_, i) => `{"i":${i},"m":"${'a'.repeat(i % 97)}ß"}\n`),
    ];
    for (const l of lines) w.append(l);
    const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
    expect(w.stats().bufferedBytes).toBe(bytes);
    await w.flush();
    expect(read(w.fileFor(T0))).toBe(lines.join(''));
    expect(w.stats()).toMatchObject({ lines: lines.length, writes: 1, bufferedBytes: 0 });
  });

  it('never holds more than maxBufferBytes: lines past it are dropped, counted and logged once', async () => {
    const clock = new ManualClock(T0);
    const { logger, lines } = logs();
    const w = writer(clock, { logger, maxBufferBytes: 1000, flushBytes: 100 });
    const line = `${JSON.stringify({ pad: 'x'.repeat(80) })}\n`; // 92 bytes
    for (let i = 0; i < 100; i++) w.append(line); // synchronously: the disk cannot keep up
    expect(w.stats().bufferedBytes).toBeLessThanOrEqual(1000);
    await w.flush();
    const st = w.stats();
    expect(st.dropped).toBeGreaterThan(0);
    expect(st.lines + st.dropped).toBe(100);
    expect(read(w.fileFor(T0)).split('\n').length - 1).toBe(st.lines);
    const warned = lines.filter((l) => String(l.msg).startsWith('journal: lines dropped'));
    expect(warned).toHaveLength(1);
    expect(warned[0]!.dropped).toBeGreaterThan(0);
  });

  it('a failing write drops its lines, counts the error, logs, and the next write tries again', async () => {
    const clock = new ManualClock(T0);
    const { logger, lines } = logs();
    const target = path.join(dir, 'journal');
    fs.writeFileSync(target, 'not a directory');
    const w = writer(clock, { logger });
    w.append('{"a":1}\n');
    await w.flush();
    expect(w.stats()).toMatchObject({ lines: 0, dropped: 1, writeErrors: 1 });
    expect(lines.some((l) => String(l.msg).startsWith('journal: lines dropped') && l.write_errors === 1)).toBe(true);
    fs.rmSync(target);
    w.append('{"a":2}\n');
    await w.flush();
    expect(read(w.fileFor(T0))).toBe('{"a":2}\n');
  });

  it('after close() lines are dropped and counted', async () => {
    const w = writer(new ManualClock(T0));
    await w.close();
    w.append('{"a":1}\n');
    expect(w.stats().dropped).toBe(1);
    expect(fs.existsSync(w.fileFor(T0))).toBe(false);
  });

  it('retention deletes whole day files older than it and nothing else', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 20, 12));
    const w = writer(clock, { retentionSec: 2 * 86_400 });
    const jdir = path.join(dir, 'journal');
    fs.mkdirSync(jdir);
    for (const f of ['2026-11-17.jsonl', '2026-11-18.jsonl', '2026-11-19.jsonl', '2026-11-20.jsonl', 'notes.txt']) fs.writeFileSync(path.join(jdir, f), '');
    await w.prune();
    expect(fs.readdirSync(jdir).sort()).toEqual(['2026-11-18.jsonl', '2026-11-19.jsonl', '2026-11-20.jsonl', 'notes.txt']);
    w.setRetention(86_400);
    clock.advance(86_400_000);
    await w.prune();
    expect(fs.readdirSync(jdir).sort()).toEqual(['2026-11-20.jsonl', 'notes.txt']);
  });
});
