/**
 * Starts what keeps series beyond the process: persist: true series are reloaded now and saved
 * periodically (SeriesPersister); serialize: true series log their closed windows
 * (SeriesLogWriter). Used by the gateway and by a cluster's primary, which own the series.
 */
import type { Logger } from 'pino';
import { seriesCatalogue } from '../config/catalogue.js';
import type { Config } from '../config/types.js';
import type { Clock } from '../series/clock.js';
import type { SeriesRegistry } from '../series/registry.js';
import { SeriesLogWriter } from './log-writer.js';
import { SeriesPersister } from './persister.js';

export interface PersistenceContext {
  registry: SeriesRegistry;
  /** The current config (a reload replaces it). */
  config: () => Config;
  logger: Logger;
  clock: Clock;
}

export function startPersistence(ctx: PersistenceContext): { persister: SeriesPersister; logWriter: SeriesLogWriter } {
  const { registry, logger, clock } = ctx;
  const config = ctx.config();
  const logWriter = new SeriesLogWriter({
    registry,
    logDir: config.log_dir,
    retentionSec: config.log_retention,
    logger,
    clock,
    seriesNames: () => seriesCatalogue(ctx.config()).serialized,
  });
  const persister = new SeriesPersister({
    registry,
    stateDir: config.state_dir,
    intervalSec: config.persist_interval,
    logger,
    clock,
    seriesNames: () => seriesCatalogue(ctx.config()).persisted,
  });
  persister.onRestored = (snap) => logWriter.restoredWindow(snap);
  const { restored, problems } = persister.loadAll();
  if (Object.keys(restored).length || problems.length) logger.info({ restored, problems }, 'persisted series loaded');
  persister.start();
  logWriter.start();
  return { persister, logWriter };
}
