/**
 * readJournal (reader.ts) with the reading and parsing in a thread of its own (read-worker.ts),
 * so a replay's thread spends its time on the engine: the same lines (without the counts and
 * adds, `p` and `k`, which replay does not read), problems and counts, batch by batch. The
 * thread stops when the lines run out, when the caller stops early, or on an error (thrown
 * here as the reader would have thrown it).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BatchDecoder, type LineBatch } from './line-batch.js';
import type { JournalLine } from './line.js';
import type { ReadOptions, ReadProblem, ReadStats } from './reader.js';

export interface ReadRequest {
  streams: readonly string[][];
  from?: number;
  to?: number;
}

export type FromReader =
  | { kind: 'batch'; batch: LineBatch; problems: ReadProblem[]; stats: ReadStats }
  | { kind: 'end'; problems: ReadProblem[]; stats: ReadStats }
  | { kind: 'error'; message: string; code?: string };

/**
 * The reading thread's script: beside this module once built; run from the TypeScript sources
 * (the test runner), the build's copy. Undefined when there is none (read in this thread then).
 */
export function readWorkerScript(): URL | undefined {
  const here = import.meta.url;
  const script = here.endsWith('.ts') ? new URL(here.replace(/\/src\/journal\/[^/]+\.ts$/, '/dist/src/journal/read-worker.js')) : new URL('./read-worker.js', here);
  return existsSync(fileURLToPath(script)) ? script : undefined;
}

export async function* readJournalThreaded(streams: readonly string[][], opts: ReadOptions, stats: ReadStats, script: URL): AsyncGenerator<JournalLine[]> {
  const req: ReadRequest = { streams, ...(opts.from !== undefined && { from: opts.from }), ...(opts.to !== undefined && { to: opts.to }) };
  const worker = new Worker(script, { workerData: req });
  const queue: FromReader[] = [];
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  worker.on('message', (m: FromReader) => {
    queue.push(m);
    wake?.();
  });
  worker.on('error', (err) => {
    failed = err;
    wake?.();
  });
  worker.on('exit', () => wake?.());
  const decoder = new BatchDecoder();
  try {
    for (;;) {
      const m = queue.shift();
      if (m === undefined) {
        if (failed) throw failed;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
        if (queue.length === 0 && !failed) throw new Error('the journal reading thread ended without a word');
        continue;
      }
      if (m.kind === 'error') throw Object.assign(new Error(m.message), m.code !== undefined ? { code: m.code } : {});
      for (const p of m.problems) opts.onProblem(p);
      Object.assign(stats, m.stats);
      if (m.kind === 'end') return;
      worker.postMessage(1); // room for one more batch
      yield decoder.decode(m.batch);
    }
  } finally {
    await worker.terminate();
  }
}
