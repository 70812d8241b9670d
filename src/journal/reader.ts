/**
 * Reading journals back (replay): the files and directories named on the command line, streamed
 * a chunk at a time (millions of lines, never all in memory), each line parsed and checked
 * (line.ts). A line that is not a journal line is reported with file:line and skipped; a last
 * line without its newline (a writer killed mid-line, or still writing) is skipped with a note.
 *
 * Every argument is one stream: a file as it is, a directory as its day files in date order.
 * Several streams (say, the journals of every node of a cluster) are merged by time.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { dayFileStart } from '../history/format.js';
import { LineProblem, parseLine, type JournalLine } from './line.js';

const CHUNK_BYTES = 1 << 20;

export interface ReadProblem {
  file: string;
  line: number;
  message: string;
}

export interface ReadOptions {
  /** Epoch ms: lines before it are left out. */
  from?: number;
  /** Epoch ms: lines at or after it are left out. */
  to?: number;
  /** Every line skipped, as file:line and why. */
  onProblem(p: ReadProblem): void;
}

export interface ReadStats {
  files: number;
  /** Lines read, good or not. */
  lines: number;
  /** Lines skipped as not journal lines (a torn last line included). */
  skipped: number;
  /** Good lines outside --from / --to. */
  outside: number;
}

/** The files of each argument: a file as given; a directory's day files (YYYY-MM-DD.jsonl) in date order. */
export async function journalStreams(args: readonly string[]): Promise<string[][]> {
  const streams: string[][] = [];
  for (const arg of args) {
    const st = await fsp.stat(arg); // a missing argument is the caller's error to report
    if (!st.isDirectory()) {
      streams.push([arg]);
      continue;
    }
    const days = (await fsp.readdir(arg)).filter((f) => dayFileStart(f) !== undefined).sort();
    streams.push(days.map((f) => path.join(arg, f)));
  }
  return streams;
}

/** One stream's lines, a chunk of good lines at a time. */
async function* streamChunks(files: readonly string[], opts: ReadOptions, stats: ReadStats): AsyncGenerator<JournalLine[]> {
  const from = opts.from ?? -Infinity;
  const to = opts.to ?? Infinity;
  for (const file of files) {
    stats.files++;
    const fh = await fsp.open(file, fs.constants.O_RDONLY);
    try {
      const buf = Buffer.alloc(CHUNK_BYTES);
      let carry = Buffer.alloc(0);
      let lineNo = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, null);
        const data = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
        const end = bytesRead === 0 ? -1 : data.lastIndexOf(0x0a);
        if (bytesRead === 0) {
          if (data.length) {
            // the last line has no newline: torn by a kill, or being written right now
            lineNo++;
            stats.lines++;
            const text = data.toString('utf8');
            const parsed = parseLine(text);
            if (parsed instanceof LineProblem) {
              stats.skipped++;
              opts.onProblem({ file, line: lineNo, message: `the last line has no newline (torn by a kill, or still being written): skipped (${parsed.message})` });
            } else if (parsed.t >= from && parsed.t < to) yield [parsed];
            else stats.outside++;
          }
          break;
        }
        if (end < 0) {
          carry = Buffer.from(data); // no newline yet: a line longer than a chunk
          continue;
        }
        carry = Buffer.from(data.subarray(end + 1));
        const texts = data.toString('utf8', 0, end).split('\n');
        const out: JournalLine[] = [];
        for (const text of texts) {
          lineNo++;
          stats.lines++;
          if (text === '') continue;
          const parsed = parseLine(text);
          if (parsed instanceof LineProblem) {
            stats.skipped++;
            opts.onProblem({ file, line: lineNo, message: parsed.message });
          } else if (parsed.t >= from && parsed.t < to) out.push(parsed);
          else stats.outside++;
        }
        if (out.length) yield out;
      }
    } finally {
      await fh.close();
    }
  }
}

interface Head {
  it: AsyncGenerator<JournalLine[]>;
  lines: JournalLine[];
  i: number;
}

/**
 * The good lines of every stream, in time order across streams (each stream in its own order),
 * a batch at a time. Ties go to the earlier stream.
 */
export async function* readJournal(streams: readonly string[][], opts: ReadOptions, stats: ReadStats): AsyncGenerator<JournalLine[]> {
  if (streams.length === 1) {
    yield* streamChunks(streams[0]!, opts, stats);
    return;
  }
  const heads: Head[] = [];
  for (const files of streams) {
    const it = streamChunks(files, opts, stats);
    const first = await it.next();
    if (!first.done) heads.push({ it, lines: first.value, i: 0 });
  }
  while (heads.length) {
    const out: JournalLine[] = [];
    let exhausted: Head | undefined;
    while (!exhausted) {
      let best = heads[0]!;
      for (let h = 1; h < heads.length; h++) if (heads[h]!.lines[heads[h]!.i]!.t < best.lines[best.i]!.t) best = heads[h]!;
      out.push(best.lines[best.i++]!);
      if (best.i === best.lines.length) exhausted = best;
    }
    yield out;
    const more = await exhausted.it.next();
    if (more.done) heads.splice(heads.indexOf(exhausted), 1);
    else {
      exhausted.lines = more.value;
      exhausted.i = 0;
    }
  }
}
