/**
 * Bans on disk: `<state_dir>/bans.state` (ban-file.ts), written atomically (fs/durable-file.ts:
 * temp file, fsync, rename, fsync the directory) at most `delayMs` after the list changed, and at
 * shutdown; reloaded at start with expired bans and history dropped. A file that cannot be
 * restored is logged, moved aside (`.corrupt-<timestamp>`) and the gateway starts without it.
 *
 * A save copies the list's entries (references to immutable bans, one pass) and writes them a
 * slice at a time, so 100,000 bans never hold the event loop for long.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { PRIVATE_DIR_MODE, moveAside, removeStaleTemps, writeDurable } from '../fs/durable-file.js';
import type { Clock } from '../series/clock.js';
import { BAN_FILE, banFileHead, banLine, historyLine, parseBanFile } from './ban-file.js';
import type { BanList } from './ban-list.js';

const SLICE = 4096;
const TEMP_RE = /^bans\.state\.tmp-\d+-\d+$/;

export interface BanPersisterOptions {
  list: BanList;
  stateDir: string;
  logger: Logger;
  clock: Clock;
  /** Longest wait between a change and its save (ms). */
  delayMs: number;
}

export interface BanPersistStats {
  written: number;
  failed: number;
}

export class BanPersister {
  readonly file: string;
  private savedChanges = -1;
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> = Promise.resolve();
  private seq = 0;
  private stopped = false;
  private readonly counts: BanPersistStats = { written: 0, failed: 0 };

  constructor(private readonly opts: BanPersisterOptions) {
    this.file = path.join(opts.stateDir, BAN_FILE);
  }

  stats(): BanPersistStats {
    return { ...this.counts };
  }

  /** Restores the file's bans and history (expired ones dropped). Never throws for a bad file. */
  load(): { restored: number; problem?: string } {
    const { list, logger } = this.opts;
    try {
      fs.mkdirSync(this.opts.stateDir, { recursive: true, mode: PRIVATE_DIR_MODE });
      removeStaleTemps(this.opts.stateDir, TEMP_RE, logger);
    } catch (e) {
      const problem = `${this.opts.stateDir}: cannot prepare the state directory: ${errText(e)}`;
      logger.warn({ dir: this.opts.stateDir }, problem);
      return { restored: 0, problem };
    }
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.savedChanges = list.changes; // nothing to write until the list changes
        return { restored: 0 };
      }
      const problem = `${this.file}: cannot read the ban file: ${errText(e)}`;
      logger.warn({ file: this.file }, problem);
      return { restored: 0, problem };
    }
    try {
      const content = parseBanFile(text);
      let restored = 0;
      for (const b of content.bans) if (list.put(b)) restored++;
      for (const [prefix, h] of content.history) list.putHistory(prefix, h);
      this.savedChanges = list.changes;
      logger.info({ file: this.file, bans: restored, expired: content.bans.length - restored }, 'bans restored');
      return { restored };
    } catch (e) {
      const aside = moveAside(this.file, this.opts.clock.now());
      const problem = `${this.file}: bans not restored (${errText(e)}); ${aside ? `moved to ${aside}` : 'could not move it aside'}`;
      logger.warn({ file: this.file, moved_to: aside }, problem);
      return { restored: 0, problem };
    }
  }

  /** The list changed: saves within delayMs (several changes, one save). */
  changed(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.save().catch((err: unknown) => this.opts.logger.error({ err, file: this.file }, 'saving bans failed'));
    }, this.opts.delayMs);
    this.timer.unref();
  }

  /** Writes the file when the list changed since it was last written or read (saves never overlap). */
  save(): Promise<void> {
    return (this.current = this.current.catch(() => undefined).then(() => this.saveNow()));
  }

  /** Stops the timer and writes a last save. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.save();
  }

  private async saveNow(): Promise<void> {
    const { list, clock } = this.opts;
    const changes = list.changes;
    if (changes === this.savedChanges) return;
    const { bans, history } = list.entries();
    const tmp = `${this.file}.tmp-${process.pid}-${++this.seq}`;
    let bytes: number;
    try {
      await fsp.mkdir(this.opts.stateDir, { recursive: true, mode: PRIVATE_DIR_MODE });
      bytes = await writeDurable(this.file, tmp, async (file) => {
        await file.write(Buffer.from(banFileHead(clock.now()), 'utf8'));
        await writeLines(file, bans, banLine);
        await file.write(Buffer.from('\n],"history":[', 'utf8'));
        await writeLines(file, history, historyLine);
        await file.write(Buffer.from('\n]}\n', 'utf8'));
      });
    } catch (e) {
      this.counts.failed++;
      throw e;
    }
    this.savedChanges = changes;
    this.counts.written++;
    this.opts.logger.debug({ file: this.file, bans: bans.length, bytes }, 'bans saved');
  }
}

/** Writes one JSON line per item, SLICE items per write (the event loop runs between slices). */
async function writeLines<T>(file: { write(chunk: Uint8Array): Promise<void> }, items: readonly T[], line: (item: T) => string): Promise<void> {
  for (let i = 0; i < items.length; i += SLICE) {
    let text = '';
    const end = Math.min(items.length, i + SLICE);
    for (let k = i; k < end; k++) text += (k === 0 ? '\n' : ',\n') + line(items[k]!);
    await file.write(Buffer.from(text, 'utf8'));
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
