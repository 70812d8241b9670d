/**
 * `persist: true`: series state written to `state_dir`, one file per series, and reloaded at start.
 *
 * File `<state_dir>/<safe name>.json` is one JSON document (snapshot-file.ts), copied from the
 * series and written a slice at a time (a few thousand keys per synchronous step) so a big series
 * never holds the event loop for long; see WindowedSeries.openSnapshot for why the file is still
 * one consistent state when keys change or windows rotate between slices.
 *
 * Writes are durable (fs/durable-file.ts): a temp file in the same directory, fsync, rename over
 * the target, fsync the directory. A reader (or a restart after a crash) sees the old file or the
 * new one, never half.
 * A series that did not change since it was last saved (or loaded) is not written again: an idle
 * gateway costs a comparison of two numbers per persisted series per tick.
 * A file that cannot be restored (bad JSON, wrong shape, type or interval changed) is reported,
 * renamed to `<file>.corrupt-<timestamp>`, and the series starts empty.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Clock } from '../series/clock.js';
import type { AuditSeries } from '../series/index.js';
import type { SeriesRegistry } from '../series/registry.js';
import type { SeriesSnapshot } from '../series/types.js';
import { PersistError } from '../errors.js';
import { PRIVATE_DIR_MODE, createDurable, moveAside, removeStaleTemps, type DurableFile } from '../fs/durable-file.js';
import { safeFileName } from './format.js';
import { STATE_FORMAT, STATE_FORMAT_VERSION, parseStateFile, type StateFileHeader } from './snapshot-file.js';

/** Window counts copied and serialized per synchronous slice (entries = this / (windows + 4)). */
const SLICE_CELLS = 32_768;
const TEMP_RE = /\.json\.tmp-\d+-\d+$/;

export interface SeriesPersisterOptions {
  registry: SeriesRegistry;
  stateDir: string;
  /** Seconds between periodic saves. */
  intervalSec: number;
  logger: Logger;
  clock: Clock;
  /** The series with `persist: true` (asked again at every save, so a config reload applies). */
  seriesNames: () => readonly string[];
  /** Keys copied per synchronous slice. Default: about 32,768 window counts' worth (4,096 keys at 4 windows). */
  sliceEntries?: number;
  /** Called after each slice is copied, before it is written (tests: rotate the clock mid-save). */
  onSlice?: (series: string, copied: number) => void;
}

/** What the persister did, for /metrics and the benchmark. */
export interface PersistStats {
  /** Per series file, since start: written, skipped because the series had not changed, failed. */
  saves: { written: number; skipped: number; failed: number };
  /** The last save that wrote at least one file (undefined before the first). */
  last?: {
    /** Epoch ms (injected clock) when it finished. */
    at: number;
    /** Wall time of the whole save (all files, fsyncs included). */
    durationMs: number;
    /** Bytes written, over all files. */
    bytes: number;
    /** Keys written, over all files. */
    entries: number;
    files: number;
    /** The longest synchronous step of that save: how long it held the event loop at once. */
    maxPauseMs: number;
  };
}

interface SavedMark {
  /** The series object (a reload that changes a series' shape replaces it). */
  series: AuditSeries;
  /** Its changes() when the file was last written or read. */
  changes: number;
}

export interface LoadResult {
  /** Keys restored per series (0 when there was no file or it was set aside). */
  restored: Record<string, number>;
  /** One line per file that could not be restored, naming the file. */
  problems: string[];
}

export class SeriesPersister {
  private readonly registry: SeriesRegistry;
  private readonly stateDir: string;
  private readonly intervalMs: number;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly seriesNames: () => readonly string[];
  private timer: NodeJS.Timeout | undefined;
  /** The save in progress (saves never overlap). */
  private current: Promise<void> = Promise.resolve();
  private busy = false;
  private seq = 0;
  private readonly sliceEntries: number | undefined;
  private readonly onSlice: ((series: string, copied: number) => void) | undefined;
  /** Per series: the state its file holds. */
  private readonly saved = new Map<string, SavedMark>();
  private readonly counters = { written: 0, skipped: 0, failed: 0 };
  private last: PersistStats['last'];

  constructor(opts: SeriesPersisterOptions) {
    if (!Number.isFinite(opts.intervalSec) || opts.intervalSec <= 0) {
      throw new PersistError(`persist interval must be a positive number of seconds, got ${opts.intervalSec}`);
    }
    this.registry = opts.registry;
    this.stateDir = opts.stateDir;
    this.intervalMs = Math.max(10, Math.round(opts.intervalSec * 1000));
    this.logger = opts.logger;
    this.clock = opts.clock;
    this.seriesNames = opts.seriesNames;
    this.sliceEntries = opts.sliceEntries;
    this.onSlice = opts.onSlice;
  }

  stats(): PersistStats {
    const st: PersistStats = { saves: { ...this.counters } };
    if (this.last) st.last = { ...this.last };
    return st;
  }

  /** The state file of a series. */
  fileFor(name: string): string {
    return path.join(this.stateDir, `${safeFileName(name)}.json`);
  }

  /**
   * Restores every persisted series from its file. Never throws for a bad file: it is reported
   * (logger.warn and `problems`), moved aside and the series starts empty. Temp files left by a
   * process killed mid-save are removed.
   */
  /** Called with each snapshot after it was restored (the serialized log catches up on windows that closed while down). */
  onRestored: ((snapshot: SeriesSnapshot) => void) | undefined;

  loadAll(): LoadResult {
    const restored: Record<string, number> = {};
    const problems: string[] = [];
    try {
      fs.mkdirSync(this.stateDir, { recursive: true, mode: PRIVATE_DIR_MODE });
      removeStaleTemps(this.stateDir, TEMP_RE, this.logger);
    } catch (e) {
      const msg = `${this.stateDir}: cannot prepare the state directory: ${errText(e)}`;
      this.logger.warn({ dir: this.stateDir }, msg);
      problems.push(msg);
    }
    for (const name of this.seriesNames()) {
      restored[name] = 0;
      const file = this.fileFor(name);
      if (!this.registry.has(name)) {
        const msg = `${file}: series "${name}" is not defined; state not loaded`;
        this.logger.warn({ file, series: name }, msg);
        problems.push(msg);
        continue;
      }
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        const msg = `${file}: cannot read series state: ${errText(e)}`;
        this.logger.warn({ file, series: name }, msg);
        problems.push(msg);
        continue;
      }
      try {
        const state = parseStateFile(text, name);
        const n = this.registry.restore(state.snapshot);
        restored[name] = n;
        const s = this.registry.get(name);
        this.saved.set(name, { series: s, changes: s.changes() }); // the file holds this state: no need to write it again
        this.onRestored?.(state.snapshot);
        this.logger.info({ file, series: name, keys: n, written_at: state.written_at }, 'series state restored');
      } catch (e) {
        const aside = moveAside(file, this.clock.now());
        const msg = `${file}: series state not restored (${errText(e)}); ${
          aside ? `moved to ${aside}` : 'could not move it aside'
        }; series "${name}" starts empty`;
        this.logger.warn({ file, series: name, moved_to: aside }, msg);
        problems.push(msg);
      }
    }
    return { restored, problems };
  }

  /** Saves every persisted series now and then every intervalSec (the timer does not hold the process). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.busy) return; // the previous save is still writing: skip this tick
      this.saveAll().catch((e: unknown) => {
        this.logger.error({ err: e, dir: this.stateDir }, 'periodic series state save failed');
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /**
   * Writes every persisted series (each atomically). Saves are serialized: a call made while a
   * save runs waits for it, then saves again. Rejects with a PersistError naming the series that
   * failed, after trying them all.
   */
  saveAll(): Promise<void> {
    const run = this.current.catch(() => undefined).then(() => this.saveAllNow());
    this.current = run;
    return run;
  }

  /** Stops the timer and writes a final save. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.saveAll();
  }

  private async saveAllNow(): Promise<void> {
    // Which series changed since their file was written: nothing else happens when none did.
    const due: Array<{ name: string; series: AuditSeries; changes: number }> = [];
    for (const name of this.seriesNames()) {
      if (!this.registry.has(name)) continue;
      const series = this.registry.get(name);
      const mark = this.saved.get(name);
      if (mark && mark.series === series && mark.changes === series.changes()) this.counters.skipped++;
      else due.push({ name, series, changes: series.changes() });
    }
    if (due.length === 0) return;
    this.busy = true;
    const failed: string[] = [];
    let firstError: unknown;
    const t0 = performance.now();
    const run = { bytes: 0, entries: 0, files: 0, maxPauseMs: 0 };
    try {
      await fsp.mkdir(this.stateDir, { recursive: true, mode: PRIVATE_DIR_MODE });
      for (const { name, series, changes } of due) {
        try {
          const r = await this.saveOne(name, series);
          // changes() as of the copy's start: an add made during the copy makes the next tick save again
          this.saved.set(name, { series, changes });
          this.counters.written++;
          run.files++;
          run.bytes += r.bytes;
          run.entries += r.entries;
          run.maxPauseMs = Math.max(run.maxPauseMs, r.maxPauseMs);
        } catch (e) {
          this.counters.failed++;
          failed.push(name);
          firstError ??= e;
          this.logger.error({ err: e, series: name, file: this.fileFor(name) }, 'series state save failed');
        }
      }
    } catch (e) {
      this.counters.failed += due.length;
      for (const d of due) failed.push(d.name);
      firstError ??= e;
    } finally {
      this.busy = false;
    }
    if (run.files > 0) this.last = { at: this.clock.now(), durationMs: performance.now() - t0, ...run };
    if (failed.length > 0) {
      throw new PersistError(`could not save series state for ${failed.map((n) => `"${n}"`).join(', ')}: ${errText(firstError)}`, {
        cause: firstError,
      });
    }
  }

  /**
   * Writes one series: its snapshot is copied a slice at a time and each slice written before
   * the next is copied, so the event loop runs between slices (and memory holds one slice).
   */
  private async saveOne(name: string, series: AuditSeries): Promise<{ bytes: number; entries: number; maxPauseMs: number }> {
    const target = this.fileFor(name);
    const tmp = `${target}.tmp-${process.pid}-${++this.seq}`;
    const now = this.clock.now();
    const header: StateFileHeader = {
      format: STATE_FORMAT,
      format_version: STATE_FORMAT_VERSION,
      written_at: new Date(now).toISOString(),
      written_at_ms: now,
      series: name,
    };
    const slice = this.sliceEntries ?? Math.max(64, Math.floor(SLICE_CELLS / (series.windows + 4)));
    let maxPauseMs = 0;
    let entries = 0;
    let file: DurableFile | undefined;
    let t = performance.now();
    const cursor = series.openSnapshot(); // one pass over the LRU lists: ~1 ms per 200,000 keys
    try {
      const head = JSON.stringify(header).slice(0, -1);
      const snapHead = JSON.stringify(cursor.head).slice(0, -1);
      let buf = Buffer.from(`${head},"snapshot":${snapHead},"entries":[`, 'utf8');
      maxPauseMs = performance.now() - t;
      file = await createDurable(target, { temp: tmp });
      for (;;) {
        await file.write(buf);
        t = performance.now();
        const batch = cursor.next(slice);
        if (batch.length === 0) break;
        let text = '';
        for (const e of batch) text += (entries++ === 0 ? '\n' : ',\n') + JSON.stringify(e);
        buf = Buffer.from(text, 'utf8');
        maxPauseMs = Math.max(maxPauseMs, performance.now() - t);
        this.onSlice?.(name, entries);
      }
      cursor.close();
      await file.write(Buffer.from('\n]}}\n', 'utf8'));
      await file.commit();
    } catch (e) {
      await file?.abort();
      throw e;
    } finally {
      cursor.close();
    }
    const bytes = file.bytes;
    this.logger.debug({ series: name, file: target, keys: entries, bytes, max_pause_ms: maxPauseMs }, 'series state saved');
    return { bytes, entries, maxPauseMs };
  }

}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
