/**
 * Durable files, written one way for everything that keeps data on disk (the dir relay's mail,
 * persisted series state, the series log):
 *
 *   const file = await createDurable(target, { temp });   // temp file in the target's directory
 *   await file.write(chunk); …                            // every byte, or an error
 *   await file.commit();                                  // fsync, rename over target, fsync the directory
 *   await file.abort();                                   // on failure: close and remove the temp file
 *
 * A reader (or a restart after a crash) sees the old file or the new one, never half of one.
 * `appendLine` appends one whole line to a log file instead (no rename).
 *
 * The files name clients (addresses, sender domains, AUTH users, mail): they are created 0640 in
 * 0750 directories, nothing for others. The process umask still applies, so an operator's
 * stricter umask (0o077) gives 0600 / 0700.
 */
import fs from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';

export const PRIVATE_FILE_MODE = 0o640;
export const PRIVATE_DIR_MODE = 0o750;

/** Error codes of a directory fsync that a platform refuses (the rename itself is atomic). */
const DIR_SYNC_REFUSED = new Set(['EISDIR', 'EINVAL', 'EPERM', 'EBADF']);

/** Writes every byte of `buf` at the file position; a write that makes no progress is an error. */
export async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    if (bytesWritten <= 0) throw new Error(`short write: ${off} of ${buf.length} bytes written`);
    off += bytesWritten;
  }
}

/** fsync a directory so a rename in it is durable. Platforms that refuse it are ignored; other errors are thrown. */
export async function syncDir(dir: string): Promise<void> {
  let d: FileHandle | undefined;
  try {
    d = await fsp.open(dir, 'r');
    await d.sync();
  } catch (e) {
    if (!DIR_SYNC_REFUSED.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    await d?.close().catch(() => undefined);
  }
}

/** A file being written next to its target; it replaces the target only at commit(). */
export interface DurableFile {
  /** The path the file gets at commit(). */
  readonly target: string;
  /** Bytes written so far. */
  readonly bytes: number;
  write(chunk: Uint8Array): Promise<void>;
  /** fsync, close, rename over the target, fsync the directory. */
  commit(): Promise<void>;
  /** Closes the file and removes the temp file unless it was renamed already. Never throws; idempotent. */
  abort(): Promise<void>;
}

export interface DurableOptions {
  /** The temp file's path; it must be in the target's directory (a rename does not cross file systems). */
  temp: string;
  /** Default PRIVATE_FILE_MODE. */
  mode?: number;
}

/** Creates the temp file (it must not exist). The directory must exist. */
export async function createDurable(target: string, opts: DurableOptions): Promise<DurableFile> {
  const { temp } = opts;
  let fh: FileHandle | undefined = await fsp.open(temp, 'wx', opts.mode ?? PRIVATE_FILE_MODE);
  let renamed = false;
  let bytes = 0;
  return {
    target,
    get bytes() {
      return bytes;
    },
    async write(chunk) {
      if (!fh) throw new Error(`${temp}: written after commit or abort`);
      await writeAll(fh, chunk);
      bytes += chunk.length;
    },
    async commit() {
      if (!fh) throw new Error(`${temp}: committed after commit or abort`);
      const h = fh;
      await h.sync();
      fh = undefined;
      await h.close();
      await fsp.rename(temp, target);
      renamed = true;
      await syncDir(path.dirname(target));
    },
    async abort() {
      const h = fh;
      fh = undefined;
      await h?.close().catch(() => undefined);
      if (!renamed) await fsp.unlink(temp).catch(() => undefined);
    },
  };
}

/**
 * Writes `target` durably in one go: `write` gets the temp file (in the target's directory) and
 * writes it; the file is then committed, or removed when anything failed. Returns the bytes written.
 */
export async function writeDurable(target: string, temp: string, write: (file: DurableFile) => Promise<void>): Promise<number> {
  const file = await createDurable(target, { temp });
  try {
    await write(file);
    await file.commit();
  } catch (e) {
    await file.abort();
    throw e;
  }
  return file.bytes;
}

/**
 * Appends one whole line (O_APPEND) to `file`, creating it and its directory privately. A last
 * line torn by a crash is ended first, so it cannot swallow this one (readers skip it).
 */
export async function appendLine(file: string, line: string): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
  const fh = await fsp.open(file, 'a+', PRIVATE_FILE_MODE);
  try {
    let data = line;
    const { size } = await fh.stat();
    if (size > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) data = `\n${line}`;
    }
    await writeAll(fh, Buffer.from(data, 'utf8'));
  } finally {
    await fh.close();
  }
}

/**
 * Renames a file that could not be restored to `<file>.corrupt-<timestamp>` (kept for inspection);
 * returns the new path, or undefined when it could not be moved.
 */
export function moveAside(file: string, nowMs: number): string | undefined {
  const stamp = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace('.', '_');
  for (let n = 0; n < 100; n++) {
    const dest = `${file}.corrupt-${stamp}${n === 0 ? '' : `-${n}`}`;
    if (fs.existsSync(dest)) continue;
    try {
      fs.renameSync(file, dest);
      return dest;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Removes the temp files of `dir` that `re` matches: left by a process killed in the middle of a write. */
export function removeStaleTemps(dir: string, re: RegExp, logger: Pick<Logger, 'info' | 'warn'>): void {
  for (const f of fs.readdirSync(dir)) {
    if (!re.test(f)) continue;
    const p = path.join(dir, f);
    try {
      fs.unlinkSync(p);
      logger.info({ file: p }, 'removed a temp state file left by an interrupted save');
    } catch (e) {
      logger.warn({ file: p, err: e }, 'could not remove a stale temp state file');
    }
  }
}
