/**
 * The journal read in a thread of its own (what replay does): the same lines but for the counts
 * and adds, the same problems and counts as reading it in this thread; errors thrown the same way;
 * the thread stops when the caller does.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatLine, type JournalLine } from '../../../src/journal/line.js';
import { journalStreams, readJournal, type ReadProblem, type ReadStats } from '../../../src/journal/reader.js';
import { readJournalThreaded, readWorkerScript } from '../../../src/journal/threaded-reader.js';

const line = (t: number, c: string, extra: Partial<JournalLine> = {}): string => formatLine({ v: 1, t, e: 'connect', c, f: 'smtp', ...extra });

async function readBoth(args: string[], opts: { from?: number; to?: number } = {}) {
  const streams = await journalStreams(args);
  const run = async (threaded: boolean) => {
    const problems: ReadProblem[] = [];
    const stats: ReadStats = { files: 0, lines: 0, skipped: 0, outside: 0 };
    const lines: JournalLine[] = [];
    const o = { ...opts, onProblem: (p: ReadProblem) => problems.push(p) };
    const it = threaded ? readJournalThreaded(streams, o, stats, readWorkerScript()!) : readJournal(streams, o, stats);
    for await (const batch of it) lines.push(...batch);
    return { lines, problems, stats };
  };
  return { here: await run(false), threaded: await run(true) };
}

const withoutCounts = (l: JournalLine): JournalLine => {
  const { p: _p, k: _k, ...rest } = l;
  return rest;
};

describe('journal read in a thread', () => {
  it('has its script (the test run builds it)', () => {
    expect(readWorkerScript()?.pathname).toMatch(/\/dist\/src\/journal\/read-worker\.js$/);
  });

  it('gives what reading here gives: day files, merged streams, bad and torn lines, long lines, --from/--to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-journal-thread-'));
    const days = join(dir, 'days');
    const other = join(dir, 'other.jsonl');
    mkdirSync(days);
    const many = Array.from({ length: 30_000 }, (_, i) => line(10 + i, `s${i % 977}`, { e: i % 3 ? 'rcpt' : 'connect', a: `198.51.100.${i % 200}`, r: `u${i}@example.com`, p: { dha: i }, k: [['rcpts', `198.51.100.${i % 200}`]], ...(i % 7 === 0 && { o: 'tempfail', y: 'dha', w: ['shadow'] }) }));
    writeFileSync(join(days, '2030-01-01.jsonl'), many.join('') + `{"v":1}\n\n`);
    writeFileSync(join(days, '2030-01-02.jsonl'), line(40_000, 'b', { h: 'x'.repeat(3 << 20) }) + `{"v":1,"t":3,"e":"conn`);
    writeFileSync(other, [5, 20, 20, 39_999].map((t) => line(t, 'o', { e: 'reject', s: 'rcpt', d: 1 })).join(''));
    for (const opts of [{}, { from: 20, to: 30_000 }]) {
      const { here, threaded } = await readBoth([days, other], opts);
      expect(here.lines.length).toBeGreaterThan(29_000);
      expect(threaded.lines).toEqual(here.lines.map(withoutCounts));
      expect(threaded.problems).toEqual(here.problems);
      expect(threaded.problems).toHaveLength(2);
      expect(threaded.stats).toEqual(here.stats);
    }
  });

  it('throws what reading here throws (a file gone since the streams were listed)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-journal-thread-gone-'));
    const file = join(dir, 'j.jsonl');
    writeFileSync(file, line(1, 'a'));
    const streams = await journalStreams([file]);
    rmSync(file);
    const stats: ReadStats = { files: 0, lines: 0, skipped: 0, outside: 0 };
    const read = async () => {
      for await (const _ of readJournalThreaded(streams, { onProblem: () => undefined }, stats, readWorkerScript()!)) void _;
    };
    await expect(read()).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('j.jsonl') });
  });

  it('returns when the caller stops early, before the whole file is read (the thread is ended on the way out)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-journal-thread-stop-'));
    const file = join(dir, 'j.jsonl');
    writeFileSync(file, Array.from({ length: 50_000 }, (_, i) => line(i, `c${i}`)).join(''));
    const stats: ReadStats = { files: 0, lines: 0, skipped: 0, outside: 0 };
    let seen = 0;
    for await (const batch of readJournalThreaded(await journalStreams([file]), { onProblem: () => undefined }, stats, readWorkerScript()!)) {
      seen += batch.length;
      break;
    }
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBeLessThan(50_000);
  });
});
