/** The `auditgate` command: serve, check-config, history, series … (src/cli.ts runs it). */
import { loadConfig, formatConfig } from '../config/load.js';
import { AuditgateError } from '../errors.js';
import { createLogger } from '../log.js';
import type { Logger } from 'pino';
import { startGateway } from '../gateway.js';
import { seriesCommand } from './series.js';
import { historyCommand } from './history.js';

const DEFAULT_CONFIG = 'config/auditgate.yaml';

const USAGE = `usage:
  auditgate serve [--config FILE]            run the gateway (default ${DEFAULT_CONFIG})
  auditgate check-config [FILE]              validate a config and print the effective one
  auditgate history --log-dir DIR --series NAME --from DATE --to DATE [--prefix P] [--group N] [--limit N] [--json]
                                             query serialized window logs (e.g. the ten /24s with most rejections yesterday)
  auditgate series VERB [options]            list, count, top, add, delete, show, sessions, decisions
                                             against a running gateway's admin listener
`;

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}

async function serve(args: string[]): Promise<number> {
  const file = option(args, '--config') ?? args[0] ?? DEFAULT_CONFIG;
  const config = loadConfig(file);
  const logger = createLogger(config.log.level);
  lastResort(logger);
  for (const w of config.warnings) logger.warn({ file: config.file }, `config: ${w}`);
  const gateway = await startGateway({ config, logger });
  let stopping = false;
  process.on('SIGHUP', () => {
    try {
      const next = loadConfig(file);
      void gateway.reload(next).catch((err: unknown) => logger.error({ err }, 'reload failed; the old configuration stays'));
    } catch (err) {
      logger.error({ err: err instanceof Error ? err.message : String(err) }, 'reload refused: invalid configuration; the old configuration stays');
    }
  });
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining sessions');
    void gateway.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return -1; // keep running
}

/**
 * The last line of defence: an exception or rejection nothing handled leaves the process in an
 * unknown state, so it exits — after one log line that names the cause (the supervisor restarts it).
 */
function lastResort(logger: Logger): void {
  const die = (kind: string, err: unknown): void => {
    logger.fatal({ err, kind }, `${kind}: ${err instanceof Error ? err.message : String(err)}; exiting`);
    process.exit(70); // EX_SOFTWARE
  };
  process.on('uncaughtException', (err) => die('uncaught exception', err));
  process.on('unhandledRejection', (reason) => die('unhandled promise rejection', reason));
}

function checkConfig(args: string[]): number {
  const file = option(args, '--config') ?? args[0] ?? DEFAULT_CONFIG;
  const config = loadConfig(file);
  for (const w of config.warnings) process.stderr.write(`warning: ${w}\n`);
  process.stdout.write(`# ${config.file}: valid${config.warnings.length ? ` (${config.warnings.length} warning${config.warnings.length > 1 ? 's' : ''})` : ''}\n`);
  process.stdout.write(formatConfig(config));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  try {
    switch (cmd) {
      case 'serve':
        return await serve(args);
      case 'check-config':
        return checkConfig(args);
      case 'history':
        return await historyCommand(args, (l) => process.stdout.write(`${l}\n`), { err: (l) => process.stderr.write(`${l}\n`) });
      case 'series':
        return await seriesCommand(args);
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
