/** The `auditgate` command: serve, check-config, history, series … (src/cli.ts runs it). */
import { AuditgateError } from '../errors.js';
import { checkConfig } from './check-config.js';
import { historyCommand } from './history.js';
import { policyCommand } from './policy-test.js';
import { replayCommand } from './replay.js';
import { serve } from './serve.js';
import { seriesCommand } from './series.js';
import { bansCommand } from './bans.js';

const DEFAULT_CONFIG = 'config/auditgate.yaml';

const USAGE = `usage:
  auditgate serve [--config FILE]            run the gateway (default ${DEFAULT_CONFIG})
  auditgate check-config [FILE]              validate a config and print the effective one
  auditgate history --log-dir DIR --series NAME --from DATE --to DATE [--prefix P] [--group N] [--limit N] [--json]
                                             query serialized window logs (e.g. the ten /24s with most rejections yesterday)
  auditgate series VERB [options]            list, count, top, add, delete, show, sessions, decisions
                                             against a running gateway's admin listener
  auditgate bans list|lift PREFIX|add PREFIX --for DURATION
                                             the ban list of a running gateway (every node of a cluster)
  auditgate replay --config FILE [--baseline FILE] JOURNAL… [--from T] [--to T] [--json]
                                             what a config would have done to the journal's traffic
  auditgate policy test CASES.yaml [--config FILE]
                                             scripted sessions with expected verdicts; exit 1 on a mismatch
`;

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}

const stdio = { out: (l: string) => void process.stdout.write(`${l}\n`), err: (l: string) => void process.stderr.write(`${l}\n`) };

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  try {
    switch (cmd) {
      case 'serve':
        return await serve(option(args, '--config') ?? args[0] ?? DEFAULT_CONFIG);
      case 'check-config':
        return checkConfig(option(args, '--config') ?? args[0] ?? DEFAULT_CONFIG);
      case 'history':
        return await historyCommand(args, (l) => process.stdout.write(`${l}\n`), { err: (l) => process.stderr.write(`${l}\n`) });
      case 'series':
        return await seriesCommand(args);
      case 'bans':
        return await bansCommand(args);
      case 'replay':
        return await replayCommand(args, stdio);
      case 'policy':
        return await policyCommand(args, stdio, DEFAULT_CONFIG);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        process.stderr.write(`auditgate: unknown command "${cmd}"\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof AuditgateError) {
      process.stderr.write(`auditgate: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
