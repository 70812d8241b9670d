/**
 * Following the config's journal across reloads, for whoever owns the journal writer (the
 * one-process gateway, a multi-process gateway's primary): the writer on `journal.dir` stays
 * when the directory is unchanged (a new retention applies); otherwise a new one starts, `use`
 * switches to it (or to none), and the old one writes what it holds and closes.
 */
import type { Logger } from 'pino';
import type { JournalConfig } from '../config/types.js';
import type { Clock } from '../series/clock.js';
import { JournalWriter } from './writer.js';

export async function followJournal(
  old: JournalWriter | undefined,
  j: JournalConfig | undefined,
  deps: { clock: Clock; logger: Logger },
  use: (writer: JournalWriter | undefined) => void,
): Promise<void> {
  if (old && j && old.dir === j.dir) {
    old.setRetention(j.retention);
    return;
  }
  const writer = j ? new JournalWriter({ dir: j.dir, retentionSec: j.retention, clock: deps.clock, logger: deps.logger }) : undefined;
  writer?.start();
  use(writer);
  await old?.close();
}
