/**
 * Retention of day files (`YYYY-MM-DD.jsonl`, history/format.ts) in one directory: the series
 * log keeps one such directory per series, the journal one for the whole gateway.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { DAY_MS, dayFileStart } from './format.js';

/** How often the writers of day files apply their retention. */
export const PRUNE_EVERY_MS = 3_600_000;

export interface PruneResult {
  deleted: string[];
  /** Day files that were due but could not be deleted. */
  failed: Array<{ file: string; err: unknown }>;
}

/**
 * Deletes the day files in `dir` whose whole UTC day ended at or before `cutoffMs`; other
 * names are left alone. A directory that cannot be listed throws (ENOENT included).
 */
export async function pruneDayFiles(dir: string, cutoffMs: number, into: PruneResult = { deleted: [], failed: [] }): Promise<PruneResult> {
  for (const f of await fsp.readdir(dir)) {
    const dayStart = dayFileStart(f);
    if (dayStart === undefined || dayStart + DAY_MS > cutoffMs) continue;
    const file = path.join(dir, f);
    try {
      await fsp.unlink(file);
      into.deleted.push(file);
    } catch (err) {
      into.failed.push({ file, err });
    }
  }
  return into;
}
