/** The milter front: its listeners (src/mta/listener.ts), each MTA connection a MilterConnection. */
import type { Logger } from 'pino';
import type { MtaFrontConfig } from '../config/types.js';
import type { SessionEngine } from '../audit/session.js';
import { MtaListener } from '../mta/listener.js';
import { MilterConnection } from './connection.js';

export interface MtaFrontDeps {
  engine: SessionEngine;
  /** The front's current settings (a reload replaces them). */
  settings: () => MtaFrontConfig | undefined;
  logger: Logger;
}

export function createMilterFront(deps: MtaFrontDeps): MtaListener {
  const logger = deps.logger.child({ front: 'milter' });
  const idleTimeout = () => deps.settings()?.idle_timeout ?? 0;
  const front: MtaListener = new MtaListener({
    kind: 'milter',
    key: 'milter',
    settings: deps.settings,
    logger,
    serve: (socket) => new MilterConnection(socket, { engine: deps.engine, stats: front.stats, logger, idleTimeout }),
  });
  return front;
}
