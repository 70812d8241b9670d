/** `auditgate serve`: the gateway as a process (signals, reload, last-resort exit). */
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { loadConfigFile } from '../config/load.js';
import { ListenError } from '../errors.js';
import { startGateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { ClusterPrimary, workerCount } from '../cluster/primary.js';
import { runWorker } from '../cluster/worker.js';

/** What serve runs: the one-process gateway, or the primary of worker processes. */
interface Running {
  reload(config: Config, text: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * `auditgate serve`: runs the gateway until SIGTERM / SIGINT (drain, exit 0); SIGHUP reloads
 * the config. A listener that cannot bind is one line on stderr naming the config key and the
 * address (`admin.listen 127.0.0.1:8025: address already in use`) and exit code 1: what was
 * bound and started is released first. With server.workers > 1 this process is the primary and
 * node:cluster runs the same command again for each worker. Returns -1 while running.
 */
export async function serve(file: string): Promise<number> {
  if (cluster.isWorker) {
    const index = process.env.AUDITGATE_WORKER ?? String(cluster.worker?.id ?? '?');
    const logger = createLogger('info').child({ worker: index });
    lastResort(logger);
    runWorker(index, logger);
    return -1;
  }
  const { config, text } = loadConfigFile(file);
  const logger = createLogger(config.log.level);
  lastResort(logger);
  for (const w of config.warnings) logger.warn({ file: config.file }, `config: ${w}`);
  let running: Running;
  try {
    if (workerCount(config) > 1) {
      const primary = new ClusterPrimary({ config, text, logger });
      await primary.start();
      running = primary;
    } else {
      running = await startGateway({ config, logger });
    }
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    process.stderr.write(`auditgate: ${err.message}\n`);
    return 1;
  }
  let stopping = false;
  process.on('SIGHUP', () => {
    try {
      const next = loadConfigFile(file);
      void running.reload(next.config, next.text).catch((err: unknown) => logger.error({ err }, 'reload failed; the old configuration stays'));
    } catch (err) {
      logger.error({ err: err instanceof Error ? err.message : String(err) }, 'reload refused: invalid configuration; the old configuration stays');
    }
  });
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining sessions');
    void running.close().then(
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
