/**
 * The thread that reads a journal for a replay (threaded-reader.ts starts it): reads and parses
 * the streams (reader.ts, the same reading as in the replaying thread), and posts the good
 * lines as column batches (line-batch.ts), with the problems met and the read counts so far.
 * At most MAX_IN_FLIGHT batches wait for the replaying thread at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BatchEncoder, batchBuffers } from './line-batch.js';
import { readJournal, type ReadProblem, type ReadStats } from './reader.js';
import type { FromReader, ReadRequest } from './threaded-reader.js';

const MAX_IN_FLIGHT = 4;

async function run(port: NonNullable<typeof parentPort>, req: ReadRequest): Promise<void> {
  let credits = MAX_IN_FLIGHT;
  let wake: (() => void) | undefined;
  port.on('message', () => {
    credits++;
    wake?.();
  });
  const stats: ReadStats = { files: 0, lines: 0, skipped: 0, outside: 0 };
  let problems: ReadProblem[] = [];
  const encoder = new BatchEncoder();
  const opts = { onProblem: (p: ReadProblem) => void problems.push(p), ...(req.from !== undefined && { from: req.from }), ...(req.to !== undefined && { to: req.to }) };
  const post = (m: FromReader, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  try {
    for await (const lines of readJournal(req.streams, opts, stats)) {
      while (credits === 0) await new Promise<void>((r) => (wake = r));
      wake = undefined;
      credits--;
      const batch = encoder.encode(lines);
      post({ kind: 'batch', batch, problems, stats }, batchBuffers(batch));
      problems = [];
    }
    post({ kind: 'end', problems, stats });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    post({ kind: 'error', message: e.message, ...(e.code !== undefined && { code: e.code }) });
  }
  port.close();
}

if (parentPort) void run(parentPort, workerData as ReadRequest);
