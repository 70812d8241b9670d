/**
 * `auditgate replay --config candidate.yaml [--baseline current.yaml] JOURNAL_DIR_OR_FILES…
 *                   [--from T] [--to T] [--json]`: what a config would have done to recorded traffic.
 * Lines that are not journal lines are listed on stderr as file:line (the first 20; all counted)
 * and skipped. Exit 0 when the replay ran; 2 for bad arguments, an invalid config or a journal
 * that cannot be read.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { AuditgateError } from '../errors.js';
import { journalStreams, type ReadProblem } from '../journal/reader.js';
import { replay } from '../replay/replay.js';
import { formatReport } from '../replay/report.js';
import { isUsageProblem, parseDate, UsageProblem } from './args.js';

const USAGE = [
  'usage: auditgate replay --config CANDIDATE.yaml [--baseline CURRENT.yaml] JOURNAL_DIR_OR_FILE… [--from T] [--to T] [--json]',
  '  Replays journal lines (journal.dir of a gateway) through the candidate config on a virtual clock and',
  '  compares each decision with the recorded one, or with the baseline config replayed on the same lines.',
  '  T is YYYY-MM-DD (UTC midnight) or an ISO timestamp; events in [from, to) are replayed.',
];
const SHOWN_PROBLEMS = 20;
const JSON_PROBLEMS = 100;

export interface CommandIo {
  out(line: string): void;
  err(line: string): void;
}

export async function replayCommand(argv: string[], io: CommandIo): Promise<number> {
  let args: { candidate: string; baseline?: string; journals: string[]; from?: number; to?: number; json: boolean };
  try {
    args = parseReplayArgs(argv);
  } catch (e) {
    if (!isUsageProblem(e)) throw e;
    io.err(`auditgate replay: ${(e as Error).message}`);
    for (const l of USAGE) io.err(l);
    return 2;
  }
  let candidate: Config;
  let baseline: Config | undefined;
  let streams: string[][];
  try {
    candidate = loadConfig(args.candidate);
    if (args.baseline !== undefined) baseline = loadConfig(args.baseline);
    streams = await journalStreams(args.journals);
  } catch (e) {
    if (!(e instanceof AuditgateError) && !(e as NodeJS.ErrnoException).code) throw e;
    io.err(`auditgate replay: ${(e as Error).message}`);
    return 2;
  }
  const problems: ReadProblem[] = [];
  let problemCount = 0;
  const onProblem = (p: ReadProblem): void => {
    problemCount++;
    if (problems.length < JSON_PROBLEMS) problems.push(p);
    if (problemCount <= SHOWN_PROBLEMS) io.err(`${p.file}:${p.line}: ${p.message}`);
  };
  const result = await replay({ candidate, streams, onProblem, ...(baseline ? { baseline } : {}), ...(args.from !== undefined ? { from: args.from } : {}), ...(args.to !== undefined ? { to: args.to } : {}) });
  if (problemCount > SHOWN_PROBLEMS) io.err(`… and ${problemCount - SHOWN_PROBLEMS} more lines skipped (${problemCount} in all)`);
  if (args.json) io.out(JSON.stringify({ ...result, problems }));
  else io.out(formatReport(result).trimEnd());
  return 0;
}

function parseReplayArgs(argv: string[]): { candidate: string; baseline?: string; journals: string[]; from?: number; to?: number; json: boolean } {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      baseline: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (values.config === undefined) throw new UsageProblem('--config (the candidate configuration) is required');
  if (positionals.length === 0) throw new UsageProblem('name at least one journal directory or file');
  const out: ReturnType<typeof parseReplayArgs> = { candidate: values.config, journals: positionals, json: values.json === true };
  if (values.baseline !== undefined) out.baseline = values.baseline;
  if (values.from !== undefined) out.from = parseDate(values.from, '--from').getTime();
  if (values.to !== undefined) out.to = parseDate(values.to, '--to').getTime();
  if (out.from !== undefined && out.to !== undefined && !(out.from < out.to)) throw new UsageProblem('--from must be before --to');
  return out;
}
