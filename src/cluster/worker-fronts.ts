/**
 * A worker's milter and policy-service fronts (when the config has them), on the worker's
 * engine. node:cluster shares their listening sockets, TCP and unix-domain alike, among the
 * workers (the primary cleared a stale socket file before they started); an MTA connection
 * stays on the worker that accepted it, so a policy-service session (keyed by the Postfix
 * connection) and a milter session are served by one worker from start to end.
 */
import type { Logger } from 'pino';
import type { Config, ListenAddress } from '../config/types.js';
import type { SessionEngine } from '../audit/session.js';
import { systemClock } from '../series/clock.js';
import type { MtaFrontKind, MtaFrontStats, MtaListener } from '../mta/listener.js';
import { createMilterFront } from '../milter/front.js';
import { createPolicyFront } from '../policy-service/front.js';
import { clearStaleSocketFor } from '../listen.js';

export class WorkerMtaFronts {
  private milter: MtaListener | undefined;
  private policy: MtaListener | undefined;

  constructor(
    private readonly engine: SessionEngine,
    private readonly config: () => Config,
    private readonly logger: Logger,
  ) {}

  async listen(config: Config): Promise<void> {
    const deps = { engine: this.engine, logger: this.logger, clock: systemClock };
    if (config.milter) {
      this.milter = createMilterFront({ ...deps, settings: () => this.config().milter });
      await this.milter.listen(config.milter.listen);
    }
    if (config.policy_service) {
      this.policy = createPolicyFront({ ...deps, settings: () => this.config().policy_service });
      await this.policy.listen(config.policy_service.listen);
    }
  }

  /** Where they listen (port 0 resolved), for the primary's start-up line. */
  addresses(): { milter: ListenAddress[]; policy: ListenAddress[] } {
    return { milter: this.milter?.addresses() ?? [], policy: this.policy?.addresses() ?? [] };
  }

  stats(): Array<{ kind: MtaFrontKind; stats: MtaFrontStats }> {
    return [this.milter, this.policy].flatMap((f) => (f ? [{ kind: f.kind, stats: f.stats }] : []));
  }

  close(): Promise<void> {
    return Promise.all([this.milter?.close(), this.policy?.close()]).then(() => undefined);
  }
}

/** The primary, before its workers listen: the fronts' stale unix socket files go (a live one is an error). */
export async function prepareMtaSockets(config: Config): Promise<void> {
  for (const a of config.milter?.listen ?? []) await clearStaleSocketFor(a, 'milter.listen');
  for (const a of config.policy_service?.listen ?? []) await clearStaleSocketFor(a, 'policy_service.listen');
}
