/**
 * `serialize: true`: every closed window of a series is appended to a log, so history can be
 * queried after the counts aged out (see log-query.ts). The files and their lines: format.ts.
 *
 * Files are created 0640 in 0750 directories (less under a stricter umask): they name clients.
 * Lines are appended with O_APPEND, one whole line per write; a line torn by a crash is ended
 * before the next append so it cannot swallow the following line (readers skip it). Retention
 * deletes whole day files once their last window is older than log_retention.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../series/clock.js';
import type { AuditSeries } from '../series/index.js';
import type { SeriesRegistry } from '../series/registry.js';
import type { ClosedWindow } from '../series/windowed.js';
import type { SeriesSnapshot } from '../series/types.js';
import { appendLine } from '../fs/durable-file.js';
import { dayFile, formatLogLine } from './format.js';
import { PRUNE_EVERY_MS, pruneDayFiles, type PruneResult } from './day-files.js';

const TICK_MS = 1000;

export interface SeriesLogWriterOptions {
  registry: SeriesRegistry;
  logDir: string;
  /** Seconds: day files whose last window is older than this are deleted. */
  retentionSec: number;
  logger: Logger;
  clock: Clock;
  /** The series with `serialize: true` (asked again every tick, so a config reload applies). */
  seriesNames: () => readonly string[];
}

interface Pending {
  closed: ClosedWindow;
  type: string;
  interval: number;
}

export class SeriesLogWriter {
  private readonly registry: SeriesRegistry;
  private readonly logDir: string;
  private readonly retentionMs: number;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly seriesNames: () => readonly string[];
  /** Series we listen to, by name (the object: a redefined series is a new one). */
  private readonly subscribed = new Map<string, AuditSeries>();
  private readonly queue: Pending[] = [];
  private draining: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = -Infinity;
  private pruning: Promise<string[]> | undefined;

  constructor(opts: SeriesLogWriterOptions) {
    this.registry = opts.registry;
    this.logDir = opts.logDir;
    this.retentionMs = opts.retentionSec * 1000;
    this.logger = opts.logger;
    this.clock = opts.clock;
    this.seriesNames = opts.seriesNames;
  }

  /** The log file a window starting at `startMs` goes to. */
  fileFor(series: string, startMs: number): string {
    return dayFile(this.logDir, series, startMs);
  }

  /** Subscribes to the serialized series and starts the 1 s tick (unref'd) that closes windows and prunes. */
  start(): void {
    if (this.timer) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /**
   * One tick: follows the series list (config reloads), closes windows that are due (their lines
   * are queued), and prunes old day files once an hour. Public so tests with a manual clock can
   * drive it.
   */
  tick(): void {
    try {
      this.syncSubscriptions();
      for (const s of this.subscribed.values()) s.currentWindow();
      const now = this.clock.now();
      if (now - this.lastPrune >= PRUNE_EVERY_MS) {
        this.lastPrune = now;
        void this.prune();
      }
    } catch (e) {
      this.logger.error({ err: e }, 'series log tick failed');
    }
  }

  /** Resolves once every queued line is written. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Closes windows that are due, stops listening and writes what is queued. The current window is not written. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    try {
      for (const s of this.subscribed.values()) s.currentWindow();
    } catch (e) {
      this.logger.error({ err: e }, 'series log: closing windows at stop failed');
    }
    for (const s of this.subscribed.values()) s.onWindowClosed(undefined);
    this.subscribed.clear();
    await this.flush();
    if (this.pruning) await this.pruning;
  }

  /**
   * Deletes day files (of every series under log_dir) whose whole day ended more than
   * log_retention ago. Returns the deleted paths.
   */
  prune(): Promise<string[]> {
    const run = (this.pruning ?? Promise.resolve([])).then(() => this.pruneNow());
    this.pruning = run;
    return run;
  }

  private async pruneNow(): Promise<string[]> {
    const cutoff = this.clock.now() - this.retentionMs;
    const result: PruneResult = { deleted: [], failed: [] };
    let dirs: string[];
    try {
      dirs = await fsp.readdir(this.logDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.logger.warn({ err: e, dir: this.logDir }, 'series log: cannot list log_dir for retention');
      }
      return result.deleted;
    }
    for (const d of dirs) {
      await pruneDayFiles(path.join(this.logDir, d), cutoff, result).catch(() => undefined); // not a directory
    }
    for (const f of result.failed) this.logger.warn({ err: f.err, file: f.file }, 'series log: cannot delete an expired day file');
    if (result.deleted.length > 0) this.logger.info({ files: result.deleted.length }, 'series log: expired day files deleted');
    return result.deleted;
  }

  private syncSubscriptions(): void {
    const wanted = new Map<string, AuditSeries>();
    for (const name of this.seriesNames()) if (this.registry.has(name)) wanted.set(name, this.registry.get(name));
    for (const [name, s] of this.subscribed) {
      if (wanted.get(name) !== s) {
        s.onWindowClosed(undefined);
        this.subscribed.delete(name);
      }
    }
    for (const [name, s] of wanted) {
      if (this.subscribed.has(name)) continue;
      s.onWindowClosed((closed) => this.enqueue(s, closed));
      this.subscribed.set(name, s);
    }
  }

  /**
   * A persisted series restored at start: the window that was current when it was saved has
   * closed while the gateway was down, so no listener saw it close. Log it now.
   */
  restoredWindow(snapshot: SeriesSnapshot): void {
    if (!this.seriesNames().includes(snapshot.name) || !this.registry.has(snapshot.name)) return;
    const s = this.registry.get(snapshot.name);
    if (snapshot.window >= s.currentWindow()) return; // still open: it will close normally
    const startMs = snapshot.window * snapshot.interval * 1000;
    const closed: ClosedWindow = { series: snapshot.name, window: snapshot.window, startMs, endMs: startMs + snapshot.interval * 1000, entries: [] };
    for (const [key, counts, sets] of snapshot.entries) {
      if (!counts[0]) continue;
      closed.entries.push([key, counts[0]]);
      if (sets) (closed.sets ??= []).push(sets[0] ?? { v: 1, exact: '' });
    }
    this.enqueue(s, closed);
  }

  private enqueue(s: AuditSeries, closed: ClosedWindow): void {
    if (closed.entries.length === 0) return; // nothing happened in that window: no line
    this.queue.push({ closed, type: s.type, interval: s.interval });
    if (!this.draining) {
      this.draining = this.drain().finally(() => {
        this.draining = undefined;
      });
    }
  }

  private async drain(): Promise<void> {
    for (let item = this.queue.shift(); item; item = this.queue.shift()) {
      const file = this.fileFor(item.closed.series, item.closed.startMs);
      try {
        const line = await formatLogLine(item.closed, item.type, item.interval);
        await appendLine(file, line);
      } catch (e) {
        this.logger.error(
          { err: e, series: item.closed.series, window: item.closed.window, file },
          'series log: could not append a closed window',
        );
      }
    }
  }
}
