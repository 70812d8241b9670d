/**
 * The journal on disk: `<dir>/<YYYY-MM-DD>.jsonl`, one file per UTC day (the day a line was
 * appended), created 0640 in a 0750 directory like the rest of the history (they name clients,
 * senders and recipients).
 *
 * Writing never holds SMTP up: append() only adds the line to a buffer in memory (encoded at
 * once into segments outside the JavaScript heap, so a line waiting for its write is no work for
 * the garbage collector); the buffer is written with O_APPEND by one asynchronous write at a
 * time, once `flushBytes` are buffered or `flushMs` after the first line. The buffer is bounded (`maxBufferBytes`, the write in flight
 * included): a line that does not fit — the disk slower than the mail, or failing — is dropped,
 * counted (`stats().dropped`, /metrics) and logged at most every 10 s. A restart appends to the
 * day's file; a last line torn by a kill is ended first so it cannot swallow the next one
 * (readers skip it with a note). Day files whose whole day is older than the retention are
 * deleted at start and hourly.
 */
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../series/clock.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, writeAll } from '../fs/durable-file.js';
import { DAY_MS, utcDay } from '../history/format.js';
import { PRUNE_EVERY_MS, pruneDayFiles } from '../history/day-files.js';

const LOG_EVERY_MS = 10_000;

export interface JournalWriterOptions {
  dir: string;
  /** Seconds: day files whose whole day is older than this are deleted. */
  retentionSec: number;
  clock: Clock;
  logger: Logger;
  /** Bytes held at most (default 8 MiB); lines past it are dropped and counted. */
  maxBufferBytes?: number;
  /** A write starts once this much is buffered (default 64 KiB) … */
  flushBytes?: number;
  /** … or this long after the first buffered line (default 200 ms). */
  flushMs?: number;
}

export interface JournalStats {
  /** Lines written to disk. */
  lines: number;
  /** Lines dropped: the buffer was full, or their write failed. */
  dropped: number;
  /** Writes (or opens) that failed. */
  writeErrors: number;
  /** Writes made (each of the lines buffered since the last). */
  writes: number;
  /** Bytes buffered now, the write in flight included. */
  bufferedBytes: number;
}

/** Bytes a segment holds (a line longer than this gets a segment of its own). */
const SEGMENT_BYTES = 64 * 1024;
/** UTF-8 bytes a UTF-16 code unit takes at most. */
const MAX_UTF8_PER_UNIT = 3;

/** The lines of one day waiting for their write, encoded. */
interface Chunk {
  day: string;
  /** Full segments, then the one being filled (`used` bytes of it). */
  segments: Buffer[];
  used: number;
  lines: number;
  bytes: number;
}

export class JournalWriter {
  readonly dir: string;
  private retentionMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly maxBuffer: number;
  private readonly flushBytes: number;
  private readonly flushMs: number;
  private chunks: Chunk[] = [];
  private buffered = 0;
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private pruning: Promise<void> | undefined;
  private file: { day: string; fh: FileHandle } | undefined;
  /** The UTC day of the last append, and the ms range it covers. */
  private day = { name: '', start: 0, end: -1 };
  private closed = false;
  private readonly counts = { lines: 0, dropped: 0, writeErrors: 0, writes: 0 };
  private unlogged = { dropped: 0, errors: 0 };
  private lastLog = -Infinity;

  constructor(opts: JournalWriterOptions) {
    this.dir = opts.dir;
    this.retentionMs = opts.retentionSec * 1000;
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.maxBuffer = opts.maxBufferBytes ?? 8 * 1024 * 1024;
    this.flushBytes = opts.flushBytes ?? 64 * 1024;
    this.flushMs = opts.flushMs ?? 200;
  }

  /** A reload's retention (the next prune applies it). */
  setRetention(sec: number): void {
    this.retentionMs = sec * 1000;
  }

  /** The day file lines appended at `ms` go to. */
  fileFor(ms: number): string {
    return path.join(this.dir, `${utcDay(ms)}.jsonl`);
  }

  /** Prunes now and every hour (the timer does not keep the process alive). */
  start(): void {
    if (this.pruneTimer) return;
    void this.prune();
    this.pruneTimer = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  /** Buffers one line (ending in a newline). Never waits; drops the line when the buffer is full. */
  append(line: string): void {
    const n = line.length;
    // near the bound, the line's exact size in bytes decides
    if (this.closed || (this.buffered + n * MAX_UTF8_PER_UNIT > this.maxBuffer && this.buffered + Buffer.byteLength(line) > this.maxBuffer)) {
      this.counts.dropped++;
      this.unlogged.dropped++;
      this.noteTrouble();
      return;
    }
    const now = this.clock.now();
    if (now < this.day.start || now >= this.day.end) {
      const start = now - (((now % DAY_MS) + DAY_MS) % DAY_MS);
      this.day = { name: utcDay(now), start, end: start + DAY_MS };
    }
    let last = this.chunks[this.chunks.length - 1];
    if (!last || last.day !== this.day.name) {
      last = { day: this.day.name, segments: [], used: 0, lines: 0, bytes: 0 };
      this.chunks.push(last);
    }
    const room = n * MAX_UTF8_PER_UNIT;
    let seg = last.segments[last.segments.length - 1];
    if (!seg || seg.length - last.used < room) {
      if (seg) last.segments[last.segments.length - 1] = seg.subarray(0, last.used);
      seg = Buffer.allocUnsafeSlow(Math.max(SEGMENT_BYTES, room));
      last.segments.push(seg);
      last.used = 0;
    }
    const bytes = seg.write(line, last.used, 'utf8');
    last.used += bytes;
    last.lines++;
    last.bytes += bytes;
    this.buffered += bytes;
    this.schedule();
  }

  /**
   * A write once `flushBytes` are buffered, else one `flushMs` after the first line waiting (also
   * for lines that came while a write was in flight: a write per handful of lines costs a
   * system call each).
   */
  private schedule(): void {
    if (this.buffered >= this.flushBytes) this.kick();
    else if (!this.timer && !this.writing && this.chunks.length) {
      this.timer = setTimeout(() => this.kick(), this.flushMs);
      this.timer.unref();
    }
  }

  stats(): JournalStats {
    return { ...this.counts, bufferedBytes: this.buffered };
  }

  /** Resolves once everything appended so far is written (or dropped by a failed write). */
  async flush(): Promise<void> {
    for (this.kick(); this.writing; this.kick()) await this.writing;
  }

  /** Writes what is buffered, closes the file; later lines are dropped. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.pruneTimer = undefined;
    await this.pruning;
    await this.closeFile();
    this.noteTrouble(true);
  }

  /** Deletes day files whose whole day ended more than the retention ago. */
  prune(): Promise<void> {
    const run = (this.pruning ?? Promise.resolve()).then(() => this.pruneNow());
    this.pruning = run;
    return run;
  }

  private async pruneNow(): Promise<void> {
    try {
      const { deleted, failed } = await pruneDayFiles(this.dir, this.clock.now() - this.retentionMs);
      for (const f of failed) this.logger.warn({ err: f.err, file: f.file }, 'journal: cannot delete an expired day file');
      if (deleted.length) this.logger.info({ files: deleted.length, dir: this.dir }, 'journal: expired day files deleted');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ err, dir: this.dir }, 'journal: cannot list the directory for retention');
    }
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.writing || this.chunks.length === 0) return;
    this.writing = this.drain().finally(() => {
      this.writing = undefined;
      if (!this.closed) this.schedule(); // lines that came while the write was in flight
    });
  }

  /** Writes the chunks buffered now (lines that come meanwhile wait for the next write). */
  private async drain(): Promise<void> {
    const chunks = this.chunks;
    this.chunks = [];
    for (const chunk of chunks) {
      try {
        const fh = await this.open(chunk.day);
        const segs = chunk.segments;
        segs[segs.length - 1] = segs[segs.length - 1]!.subarray(0, chunk.used);
        await writeAll(fh, segs.length === 1 ? segs[0]! : Buffer.concat(segs, chunk.bytes));
        this.counts.writes++;
        this.counts.lines += chunk.lines;
      } catch (err) {
        this.counts.writeErrors++;
        this.counts.dropped += chunk.lines;
        this.unlogged.dropped += chunk.lines;
        this.unlogged.errors++;
        this.noteTrouble(false, err);
        await this.closeFile(); // opened again for the next chunk
      } finally {
        this.buffered -= chunk.bytes;
      }
    }
  }

  /** The day's file, opened for appending; a last line torn by a kill is ended first. */
  private async open(day: string): Promise<FileHandle> {
    if (this.file?.day === day) return this.file.fh;
    await this.closeFile();
    await fsp.mkdir(this.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const name = path.join(this.dir, `${day}.jsonl`);
    const fh = await fsp.open(name, 'a+', PRIVATE_FILE_MODE);
    try {
      const { size } = await fh.stat();
      if (size > 0) {
        const last = Buffer.alloc(1);
        await fh.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) {
          await writeAll(fh, Buffer.from('\n'));
          this.logger.warn({ file: name }, 'journal: the last line of the day file was torn (the gateway was killed mid-write); it was ended, readers skip it');
        }
      }
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.file = { day, fh };
    return fh;
  }

  private async closeFile(): Promise<void> {
    const f = this.file;
    this.file = undefined;
    await f?.fh.close().catch(() => undefined);
  }

  /** Logs drops and write errors, at most every 10 s (or now, when `force`). */
  private noteTrouble(force = false, err?: unknown): void {
    const { dropped, errors } = this.unlogged;
    if (dropped === 0 && errors === 0) return;
    const now = this.clock.now();
    if (!force && now - this.lastLog < LOG_EVERY_MS) return;
    this.lastLog = now;
    this.unlogged = { dropped: 0, errors: 0 };
    this.logger.warn(
      { dir: this.dir, dropped, write_errors: errors, dropped_total: this.counts.dropped, ...(err ? { err } : {}) },
      'journal: lines dropped (the buffer was full or a write failed); mail is not held up for the journal',
    );
  }
}
