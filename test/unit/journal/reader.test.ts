/** Reading journals back: directories in day order, several streams merged by time, long lines, bad lines. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatLine, type JournalLine } from '../../../src/journal/line.js';
import { journalStreams, readJournal, type ReadProblem, type ReadStats } from '../../../src/journal/reader.js';

const line = (t: number, c: string, extra: Partial<JournalLine> = {}): string => formatLine({ v: 1, t, e: 'connect', c, f: 'smtp', ...extra });

async function readAll(args: string[], opts: { from?: number; to?: number } = {}) {
  const problems: ReadProblem[] = [];
  const stats: ReadStats = { files: 0, lines: 0, skipped: 0, outside: 0 };
  const lines: JournalLine[] = [];
  for await (const batch of readJournal(await journalStreams(args), { ...opts, onProblem: (p) => problems.push(p) }, stats)) lines.push(...batch);
  return { lines, problems, stats };
}

describe('journal reader', () => {
  it('reads a directory as its day files in date order, leaving other files alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-journal-read-'));
    writeFileSync(join(dir, '2030-01-02.jsonl'), line(30, 'b'));
    writeFileSync(join(dir, '2030-01-01.jsonl'), line(10, 'a') + line(20, 'a'));
    writeFileSync(join(dir, 'notes.txt'), 'not a journal\n');
    const { lines, stats, problems } = await readAll([dir]);
    expect(lines.map((l) => l.t)).toEqual([10, 20, 30]);
    expect(stats).toEqual({ files: 2, lines: 3, skipped: 0, outside: 0 });
    expect(problems).toEqual([]);
  });

  it('merges several arguments (the journals of several nodes) by time, each in its own order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-journal-merge-'));
    const a = join(dir, 'a.jsonl');
    const b = join(dir, 'b.jsonl');
    writeFileSync(a, [1, 4, 4, 9].map((t) => line(t, 'a')).join(''));
    writeFileSync(b, [2, 3, 4, 10, 11].map((t) => line(t, 'b')).join(''));
    const { lines } = await readAll([a, b]);
    expect(lines.map((l) => `${l.t}${l.c}`)).toEqual(['1a', '2b', '3b', '4a', '4a', '4b', '9a', '10b', '11b']);
  });

  it('reads lines longer than its read chunk, and keeps to --from/--to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-journal-long-'));
    const file = join(dir, 'j.jsonl');
    const long = 'x'.repeat(3 << 20);
    writeFileSync(file, line(1, 'a') + line(2, 'b', { h: long }) + line(3, 'c'));
    const all = await readAll([file]);
    expect(all.lines.map((l) => l.c)).toEqual(['a', 'b', 'c']);
    expect(all.lines[1]!.h).toBe(long);
    const ranged = await readAll([file], { from: 2, to: 3 });
    expect(ranged.lines.map((l) => l.c)).toEqual(['b']);
    expect(ranged.stats.outside).toBe(2);
  });

  it('skips and reports bad lines with file:line, a torn last line with a note', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-journal-bad-'));
    const file = join(dir, 'j.jsonl');
    writeFileSync(file, `${line(1, 'a')}{"v":1}\n\n${line(2, 'b')}{"v":1,"t":3,"e":"conn`);
    const { lines, problems, stats } = await readAll([file]);
    expect(lines.map((l) => l.c)).toEqual(['a', 'b']);
    expect(problems).toEqual([
      { file, line: 2, message: '"t" is not a time in ms' },
      { file, line: 5, message: 'the last line has no newline (torn by a kill, or still being written): skipped (cut short (a line torn by a crash?))' },
    ]);
    expect(stats.skipped).toBe(2);
  });
});
