/**
 * Compiles the config's policies into per-stage rule lists: CIDR lists parsed once, reply
 * texts parsed once, series types resolved. Done at start-up and on reload, never per event.
 */
import { seriesCatalogue, type SeriesCatalogue } from '../config/catalogue.js';
import type { Config, PolicyConfig } from '../config/types.js';
import { type Action, type Stage, isSessionGauge, SESSION_GAUGES, STAGES } from '../config/vocabulary.js';
import type { SeriesType } from '../series/types.js';
import type { ClientAddress } from '../series/address.js';
import { PrefixSet } from '../series/prefix-set.js';
import type { BanSpec } from '../bans/ban-list.js';
import { parseReplyText, type ReplySpec } from './reply.js';

export interface CompiledPolicy {
  name: string;
  stage: Stage;
  action: Action;
  shadow: boolean;
  /** Undefined for pure client-list policies (allow/deny lists). */
  series?: string;
  /** The series' type; a sessions gauge is typed by the family it counts (sessions: cidr, sessions6: cidr_ipv6). */
  seriesType?: SeriesType;
  /** True for the built-in sessions gauges (read from the session tracker, not the store). */
  gauge?: boolean;
  /** Series interval in seconds (for "come back in" hints); 0 for sessions. */
  interval: number;
  keyTemplate?: string;
  mask?: number;
  startv: number;
  endv: number;
  above?: number;
  client?: CidrMatcher;
  notClient?: CidrMatcher;
  delayMs: number;
  reply?: ReplySpec;
  /** Ban the client's prefix at `mask` (its address without one) when the policy fires, enforcing. */
  ban?: BanSpec;
}

export type CompiledPolicies = Record<Stage, CompiledPolicy[]>;

/** True when the client's address lies in one of the matcher's prefixes (never for a client without one). */
export type CidrMatcher = (client: ClientAddress | undefined) => boolean;

export function cidrMatcher(list: readonly string[]): CidrMatcher {
  if (list.length === 0) return () => false;
  const set = PrefixSet.of(list);
  return (client) => set.has(client);
}

export function compilePolicies(config: Config): CompiledPolicies {
  const types = seriesCatalogue(config).types;
  const out = Object.fromEntries(STAGES.map((s) => [s, [] as CompiledPolicy[]])) as CompiledPolicies;
  for (const p of config.policies) out[p.on].push(compileOne(p, types));
  return out;
}

function compileOne(p: PolicyConfig, types: SeriesCatalogue['types']): CompiledPolicy {
  const c: CompiledPolicy = {
    name: p.name,
    stage: p.on,
    action: p.action,
    shadow: p.mode === 'shadow',
    interval: 0,
    startv: p.windows[0],
    endv: p.windows[1],
    delayMs: Math.round((p.delay ?? 0) * 1000),
  };
  if (p.series !== undefined) {
    c.series = p.series;
    if (isSessionGauge(p.series)) {
      c.seriesType = SESSION_GAUGES[p.series];
      c.gauge = true;
    }
    else {
      const t = types.get(p.series);
      c.seriesType = t?.type;
      c.interval = t?.interval ?? 0;
    }
  }
  if (p.key !== undefined) c.keyTemplate = p.key;
  if (p.mask !== undefined) c.mask = p.mask;
  if (p.above !== undefined) c.above = p.above;
  if (p.client) c.client = cidrMatcher(p.client);
  if (p.not_client) c.notClient = cidrMatcher(p.not_client);
  if (p.reply) {
    const r = parseReplyText(p.reply);
    if (r) c.reply = r;
  }
  if (p.ban) c.ban = { forMs: p.ban.for * 1000, factor: p.ban.factor, maxMs: p.ban.max * 1000 };
  return c;
}
