/** `auditgate replay --json` run in this process, and a journal directory's lines, for the replay tests. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { replayCommand } from '../../src/cli/replay.js';
import { parseLine, type JournalLine } from '../../src/journal/line.js';
import type { ReplayResult } from '../../src/replay/replay.js';

/** The replay's exit code, its JSON result (undefined when it printed none) and what it printed on stderr. */
export async function replayJson(args: string[]): Promise<{ code: number; result: ReplayResult; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await replayCommand([...args, '--json'], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, result: (out.length ? JSON.parse(out.join('\n')) : undefined) as ReplayResult, err };
}

/** `auditgate replay --config CONFIG JOURNAL --json`, which must exit 0: its result. */
export async function replayWith(configFile: string, journal: string): Promise<ReplayResult> {
  const r = await replayJson(['--config', configFile, journal]);
  if (r.code !== 0) throw new Error(`auditgate replay --config ${configFile} ${journal}: exit ${r.code}\n${r.err.join('\n')}`);
  return r.result;
}

/** Every line of a journal directory's day files, in file order (a line that is not a journal line throws). */
export function journalLines(dir: string): JournalLine[] {
  const out: JournalLine[] = [];
  for (const f of readdirSync(dir).sort()) {
    for (const text of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!text) continue;
      const l = parseLine(text);
      if (!('v' in l)) throw new Error(`bad journal line in ${f}: ${text}`);
      out.push(l);
    }
  }
  return out;
}
