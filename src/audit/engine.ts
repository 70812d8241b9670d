/**
 * The session engine and its recorder, built one way for every user: the gateway (over its
 * store, with the journal), replay and policy tests (over an in-process store on a virtual
 * clock, src/replay/virtual-engine.ts). Whatever the engine gains (bans, protected networks,
 * alerts) is wired here once, so a replay decides as the gateway would.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Clock } from '../series/clock.js';
import type { SeriesStore } from '../store/types.js';
import { Recorder } from './recorder.js';
import { SessionEngine, type EngineJournal } from './session.js';
import type { Controls } from './controls.js';
import type { SessionGauge } from './sessions.js';
import type { GatewayEvents } from '../events.js';

export interface EngineInputs {
  config: Config;
  store: SeriesStore;
  sessions: SessionGauge;
  clock: Clock;
  logger: Logger;
  /** The name in refusals (`[cid@hostname]`); asked each session, so a reload applies. */
  hostname: () => string;
  journal?: EngineJournal;
  /** Bans and protected networks (the gateway's); none in replay and policy tests for now. */
  controls?: Controls;
  /** Where verdicts are published (the console's live decisions). */
  events?: GatewayEvents;
}

export interface EngineParts {
  recorder: Recorder;
  engine: SessionEngine;
}

export function createEngine(i: EngineInputs): EngineParts {
  const recorder = new Recorder(i.config, i.store, i.sessions, i.logger, i.clock);
  const engine = new SessionEngine({
    recorder,
    sessions: i.sessions,
    hostname: i.hostname,
    logger: i.logger,
    ...(i.journal ? { journal: i.journal } : {}),
    ...(i.controls ? { controls: i.controls } : {}),
    ...(i.events ? { events: i.events } : {}),
  });
  return { recorder, engine };
}
