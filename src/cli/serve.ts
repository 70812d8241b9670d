/** `auditgate serve`: the gateway as a process (signals, reload, last-resort exit). */
import type { Logger } from 'pino';
import { loadConfig } from '../config/load.js';
import { ListenError } from '../errors.js';
import { type Gateway, startGateway } from '../gateway.js';
import { createLogger } from '../log.js';

/**
 * `auditgate serve`: runs the gateway until SIGTERM / SIGINT (drain, exit 0); SIGHUP reloads
 * the config. A listener that cannot bind is one line on stderr naming the config key and the
 * address (`admin.listen 127.0.0.1:8025: address already in use`) and exit code 1: what was
 * bound and started is released first. Returns -1 while running.
 */
export async function serve(file: string): Promise<number> {
  const config = loadConfig(file);
  const logger = createLogger(config.log.level);
  lastResort(logger);
  for (const w of config.warnings) logger.warn({ file: config.file }, `config: ${w}`);
  let gateway: Gateway;
  try {
    gateway = await startGateway({ config, logger });
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    process.stderr.write(`auditgate: ${err.message}\n`);
    return 1;
  }
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
