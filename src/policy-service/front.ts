/**
 * The policy-service front: its listeners (src/mta/listener.ts), each MTA connection a
 * PolicyConnection, and one session table for all of them (Postfix may ask about one SMTP
 * session over more than one connection).
 */
import type { Clock } from '../series/clock.js';
import { MtaListener } from '../mta/listener.js';
import type { MtaFrontDeps } from '../milter/front.js';
import { PolicyConnection } from './connection.js';
import { PolicySessions } from './sessions.js';

/** Policy-service sessions kept at most (a few hundred are live per busy Postfix; each is a few hundred bytes). */
export const POLICY_SESSIONS_MAX = 20_000;

export function createPolicyFront(deps: MtaFrontDeps & { clock: Clock }): MtaListener {
  const logger = deps.logger.child({ front: 'policy' });
  const idleTimeout = () => deps.settings()?.idle_timeout ?? 0;
  const sessions = new PolicySessions({ engine: deps.engine, clock: deps.clock, idleMs: () => idleTimeout() * 1000, max: POLICY_SESSIONS_MAX });
  const front: MtaListener = new MtaListener({
    kind: 'policy',
    key: 'policy_service',
    settings: deps.settings,
    logger,
    serve: (socket) => new PolicyConnection(socket, { engine: deps.engine, stats: front.stats, logger, idleTimeout, sessions }),
    closed: () => sessions.clear(),
  });
  return front;
}
