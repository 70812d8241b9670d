/**
 * Configuration that is valid but probably not what the operator meant: reported by
 * `check-config` and logged at start, never refused. Each warning carries the key path it is
 * about; the loader turns it into `file:line:col`.
 */
import { seriesCatalogue } from './catalogue.js';
import type { Config, PathProblem } from './types.js';
import { formatHostPort } from './values.js';
import { type Stage, isSessionGauge, SESSION_GAUGES } from './vocabulary.js';
import type { SeriesType } from '../series/types.js';
import { FAMILY_BITS, parsePrefix, prefixContains } from '../series/address.js';

export function configWarnings(config: Config): PathProblem[] {
  return [...ipv4OnlyStages(config), ...protectedOnlyPolicies(config)];
}

/**
 * A policy that refuses, slows or bans, whose `client:` list lies wholly inside `protected:`
 * networks: it can only ever match clients that no policy may refuse, so it never does anything.
 */
function protectedOnlyPolicies(config: Config): PathProblem[] {
  if (config.protected.length === 0) return [];
  const prot = config.protected.flatMap((c) => parsePrefix(c) ?? []);
  const covered = (cidr: string): boolean => {
    const p = parsePrefix(cidr);
    return !!p && prot.some((q) => q.family === p.family && prefixContains(q.words, q.mask, p.words, p.mask, FAMILY_BITS[p.family] / 32));
  };
  const out: PathProblem[] = [];
  config.policies.forEach((p, i) => {
    if (p.action === 'accept' || !p.client || !p.client.every(covered)) return;
    out.push({
      path: ['policies', i, 'client'],
      message: `policy "${p.name}" only matches protected networks (client: ${p.client.join(', ')}; protected: ${config.protected.join(', ')}): it can never ${p.action} or ban anyone, only log what it would have done`,
    });
  });
  return out;
}

/**
 * A stage whose policies count IPv4 clients only (cidr series) while IPv6 clients can reach the
 * gateway: an IPv6 client is never limited there (a cidr series ignores IPv6 addresses).
 */
function ipv4OnlyStages(config: Config): PathProblem[] {
  const v6Listener = config.server.listen.find((l) => l.host.includes(':'));
  const proxied = config.server.proxy_protocol.length > 0 || config.server.xclient.length > 0;
  const mta = config.milter ? 'milter' : config.policy_service ? 'policy_service' : undefined;
  if (!v6Listener && !proxied && !mta) return [];
  const how = v6Listener
    ? `server.listen ${formatHostPort(v6Listener)} accepts IPv6 clients`
    : proxied
      ? 'a PROXY header or XCLIENT can present IPv6 clients'
      : `the ${mta} front serves whatever clients the MTA has, IPv6 included`;
  const types = seriesCatalogue(config).types;
  const typeOf = (name: string): SeriesType | undefined => (isSessionGauge(name) ? SESSION_GAUGES[name] : types.get(name)?.type);

  const byStage = new Map<Stage, { v4: number[]; v6: boolean }>();
  config.policies.forEach((p, i) => {
    if (p.series === undefined || p.mode === 'shadow' || p.action === 'accept') return;
    const t = typeOf(p.series);
    const entry = byStage.get(p.on) ?? { v4: [], v6: false };
    if (t === 'cidr') entry.v4.push(i);
    if (t === 'cidr_ipv6') entry.v6 = true;
    byStage.set(p.on, entry);
  });
  const out: PathProblem[] = [];
  for (const [stage, { v4, v6 }] of byStage) {
    if (v6 || v4.length === 0) continue;
    const names = v4.map((i) => `"${config.policies[i]!.name}"`).join(', ');
    out.push({
      path: ['policies', v4[0]!, 'series'],
      message: `the ${stage} stage limits IPv4 clients only (${names} ${v4.length > 1 ? 'count cidr series' : 'counts a cidr series'}, which ignore${v4.length > 1 ? '' : 's'} IPv6 addresses) while ${how}: add an IPv6 twin (a cidr_ipv6 series with store_prefix: 64 and a policy with mask: 64, or "sessions6")`,
    });
  }
  return out;
}
