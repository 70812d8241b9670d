/**
 * The gateway's engine for a config, without sockets, on a virtual clock: the series the config
 * defines (all in this process, whatever `replicate` says: a replay asks no Redis), the sessions
 * gauge, the protected networks and the bans its policies issue or are made by hand (in memory,
 * on the virtual clock: no ban file, no Redis), the recorder and the session engine from the
 * same factory the gateway uses (audit/engine.ts), its journal lines handed to `sink`. Replay
 * and policy tests move the clock. The store answers at once, so the engine has done everything an event does (a refusal's
 * reject event included) by the time its verdict is returned.
 */
import { pino } from 'pino';
import { seriesCatalogue } from '../config/catalogue.js';
import type { Config } from '../config/types.js';
import { OperatorControls } from '../audit/controls.js';
import { createEngine } from '../audit/engine.js';
import { BanService } from '../bans/ban-service.js';
import type { SessionEngine } from '../audit/session.js';
import { SessionTracker } from '../audit/sessions.js';
import { ManualClock } from '../series/clock.js';
import { SeriesRegistry } from '../series/registry.js';
import { MemoryStore } from '../store/memory-store.js';
import { Journal, type LineSink } from '../journal/journal.js';

export interface VirtualEngine {
  readonly clock: ManualClock;
  readonly engine: SessionEngine;
  readonly registry: SeriesRegistry;
  /** Its protected networks and bans (replay applies the bans a journal says were made by hand). */
  readonly controls: OperatorControls;
}

/** `lean`: the lines carry the decisions only (what replay and policy tests compare), not the facts, counts and adds. */
export function virtualEngine(config: Config, startMs: number, sink?: LineSink, lean = false): VirtualEngine {
  const clock = new ManualClock(startMs);
  const registry = new SeriesRegistry(clock);
  for (const d of seriesCatalogue(config).definitions) registry.define(d);
  const sessions = new SessionTracker(clock);
  const logger = pino({ level: 'silent' });
  const controls = new OperatorControls(new BanService({ clock, logger, node: config.server.hostname }), config);
  const { engine } = createEngine({
    config,
    store: new MemoryStore(registry),
    sessions,
    clock,
    logger,
    controls,
    hostname: () => config.server.hostname,
    journal: new Journal(clock, sink, lean),
  });
  return { clock, engine, registry, controls };
}
