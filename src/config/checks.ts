/**
 * Cross-field checks: what one key cannot tell alone (series references and their types,
 * masks, window ranges, placeholders per stage, reply codes per action, AUTH and TLS, a
 * non-loopback admin listener without a token). Problems carry the key path they are about.
 */
import ipaddr from 'ipaddr.js';
import type { SeriesType } from '../series/types.js';
import { monitorSeries } from './catalogue.js';
import { suggest } from './problems.js';
import type { AdminConfig, MonitorConfig, PathProblem, PolicyConfig, RecordRule, RelayConfig, SeriesConfig, ServerConfig, StoreConfig } from './types.js';
import { describeValue, formatHostPort, templatePlaceholders } from './values.js';
import { AMOUNT_STAGES, SESSION_GAUGES, STAGE_PLACEHOLDERS, isSessionGauge, type Stage } from './vocabulary.js';

export interface SemanticInput {
  server: ServerConfig | undefined;
  relay: RelayConfig | undefined;
  /** Which of these sections the file has (valid or not: an invalid one is reported on its own). */
  fronts: { relay: boolean; milter: boolean; policy_service: boolean };
  series: Map<string, SeriesConfig | null>;
  record: Array<RecordRule | null>;
  policies: Array<PolicyConfig | null>;
  monitors: MonitorConfig[] | undefined;
  store: StoreConfig | undefined;
  admin: AdminConfig | undefined;
}

const MASK_BITS: Record<'cidr' | 'cidr_ipv6', number> = { cidr: 32, cidr_ipv6: 128 };

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  try {
    return ipaddr.process(host).range() === 'loopback';
  } catch {
    return false;
  }
}

export function checkSemantics(input: SemanticInput, problems: PathProblem[]): void {
  const add = (p: Array<string | number>, message: string) => problems.push({ path: p, message });

  // Built-in monitor series, and user series that would shadow them.
  const builtins = new Map<string, { type: SeriesType; windows: number }>();
  if (input.monitors) {
    const seen = new Map<string, number>();
    input.monitors.forEach((m, i) => {
      const first = seen.get(m.text);
      if (first !== undefined) add(['monitors', i], `monitor "${m.text}" is listed twice (first as monitors[${first}])`);
      else seen.set(m.text, i);
    });
    for (const s of monitorSeries(input.monitors)) builtins.set(s.name, { type: s.type, windows: s.windows });
  }

  for (const [name, s] of input.series) {
    if (isSessionGauge(name) || builtins.has(name)) {
      add(['series', name], `series name "${name}" is reserved for a built-in series`);
    }
    if (!s) continue;
    if (s.store_prefix !== undefined && s.type !== 'cidr_ipv6') {
      add(['series', name, 'store_prefix'], `store_prefix applies to cidr_ipv6 series only, "${name}" is ${s.type}`);
    }
    if (s.replicate !== 'none' && input.store && input.store.redis === undefined) {
      add(['series', name, 'replicate'], `replicate: ${s.replicate} needs a shared store: set store.redis`);
    }
  }

  /** Type and window count of a referenced series; undefined when unknown or itself invalid. */
  const lookup = (
    name: string,
    at: Array<string | number>,
    allowSessions: boolean,
  ): { type: SeriesType; windows: number; gauge?: true; distinct?: boolean } | undefined => {
    if (allowSessions && isSessionGauge(name)) return { type: SESSION_GAUGES[name], windows: Infinity, gauge: true };
    const own = input.series.get(name);
    if (own) return own;
    if (own === null) return undefined; // defined but invalid: already reported
    const builtin = builtins.get(name);
    if (builtin) return builtin;
    if (!input.monitors) return undefined; // monitors invalid: cannot tell
    const hint = suggest(name, [...input.series.keys(), ...builtins.keys(), ...(allowSessions ? Object.keys(SESSION_GAUGES) : [])]);
    add(at, `unknown series "${name}"${hint ? ` (did you mean "${hint}"?)` : ''}; define it under series:${builtins.size > 0 ? ' or use a monitor series such as "' + [...builtins.keys()][0] + '"' : ''}`);
    return undefined;
  };

  /** A distinct series counts the rule's value; any other series counts the rule's amount. */
  const checkDistinctRule = (r: RecordRule, i: number, name: string, distinct: boolean, at: Array<string | number>) => {
    if (distinct) {
      if (r.value === undefined) add(at, `series "${name}" counts distinct values (distinct: true): this rule needs a value, e.g. value: "{rcpt}"`);
      if (r.count !== undefined) add(['record', i, 'count'], `count does not apply to distinct series "${name}": an event adds its value to the key's set once`);
    } else if (r.value !== undefined) {
      add(['record', i, 'value'], `value applies only to distinct series; "${name}" counts events (set distinct: true on the series to count distinct values)`);
    }
  };

  const checkKeyForStage = (key: string, on: Stage, at: Array<string | number>) => {
    const allowed = STAGE_PLACEHOLDERS[on];
    for (const p of templatePlaceholders(key)) {
      if (!allowed.includes(p)) add(at, `{${p}} has no value at stage "${on}"; available there: ${allowed.map((a) => `{${a}}`).join(' ')}`);
    }
  };

  input.record.forEach((r, i) => {
    if (!r) return;
    if (r.key !== undefined) checkKeyForStage(r.key, r.on, ['record', i, 'key']);
    if (r.value !== undefined) checkKeyForStage(r.value, r.on, ['record', i, 'value']);
    if (typeof r.count === 'string' && !AMOUNT_STAGES[r.count].includes(r.on)) {
      const what = r.count === 'rcpts' ? "the message's accepted recipients" : "the message's size";
      add(['record', i, 'count'], `count: ${r.count} (${what}) is known only at stage ${AMOUNT_STAGES[r.count].map((s) => `"${s}"`).join(', ')}; this rule is on "${r.on}"`);
    }
    const single = r.series.length === 1;
    r.series.forEach((name, j) => {
      const at: Array<string | number> = single ? ['record', i, 'series'] : ['record', i, 'series', j];
      if (isSessionGauge(name)) {
        add(at, `"${name}" is the built-in concurrent-session count; a record rule cannot add to it`);
        return;
      }
      const s = lookup(name, at, false);
      if (!s) return;
      if (s.type === 'string' && r.key === undefined) {
        add(['record', i, 'key'], `series "${name}" is a string series: this rule needs a key, e.g. key: "{mail_from_domain}"`);
      }
      if ((s.type === 'cidr' || s.type === 'cidr_ipv6') && r.key !== undefined && r.key !== '{ip}') {
        add(['record', i, 'key'], `series "${name}" is ${s.type}: its key is the client address, so key must be "{ip}" or left out`);
      }
      checkDistinctRule(r, i, name, s.distinct === true, at);
    });
  });

  const names = new Map<string, number>();
  input.policies.forEach((p, i) => {
    if (!p) return;
    const at = (...rest: Array<string | number>) => ['policies', i, ...rest];
    const first = names.get(p.name);
    if (first !== undefined) add(at('name'), `policy name "${p.name}" is already used by policies[${first}]`);
    else names.set(p.name, i);

    if (p.key !== undefined) checkKeyForStage(p.key, p.on, at('key'));

    if (p.series === undefined) {
      for (const k of ['above', 'mask', 'key'] as const) {
        if (p[k] !== undefined) add(at(k), `${k} applies only to a policy with a series`);
      }
    } else {
      if (p.above === undefined) add(at('above'), `policy "${p.name}" counts series "${p.series}" but has no "above" threshold`);
      const s = lookup(p.series, at('series'), true);
      if (s) {
        if (s.type === 'string') {
          if (p.mask !== undefined) add(at('mask'), `mask does not apply to string series "${p.series}"`);
          if (p.key === undefined) add(at('key'), `series "${p.series}" is a string series: this policy needs a key, e.g. key: "{mail_from_domain}"`);
        } else {
          const bits = MASK_BITS[s.type];
          if (p.mask !== undefined && p.mask > bits) {
            add(at('mask'), `mask ${p.mask} is out of range 0..${bits} for ${s.gauge ? 'the sessions gauge' : s.type + ' series'} "${p.series}"${s.gauge && s.type === 'cidr' ? ' (IPv4 clients; "sessions6" counts IPv6 clients)' : ''}`);
          }
          if (p.key !== undefined && (s.gauge || p.key !== '{ip}')) {
            add(at('key'), `series "${p.series}" is keyed by the client address: key must be "{ip}" or left out`);
          }
        }
        if (!s.gauge && p.windows[1] > s.windows - 1) {
          add(at('windows'), `window range [${p.windows[0]}, ${p.windows[1]}] is out of range 0..${s.windows - 1} for series "${p.series}" (${s.windows} windows)`);
        }
      }
    }

    if (p.action === 'tarpit') {
      if (p.delay === undefined) add(at('delay'), `a tarpit policy needs a delay, e.g. delay: 5s`);
    } else if (p.delay !== undefined) {
      add(at('delay'), `delay applies only to action tarpit, this policy's action is ${p.action}`);
    }
    if (p.reply !== undefined) {
      if (p.action === 'tempfail' && !p.reply.startsWith('4')) add(at('reply'), `a tempfail reply must start with a 4xx code, e.g. "451 4.7.1 ...", got ${describeValue(p.reply)}`);
      else if (p.action === 'reject' && !p.reply.startsWith('5')) add(at('reply'), `a reject reply must start with a 5xx code, e.g. "550 5.7.1 ...", got ${describeValue(p.reply)}`);
      else if (p.action === 'accept' || p.action === 'tarpit') add(at('reply'), `reply applies only to tempfail and reject, this policy's action is ${p.action}`);
    }
  });

  const auth = input.server?.auth;
  if (auth?.enabled) {
    if (input.relay?.kind === 'dir') add(['server', 'auth', 'enabled'], 'AUTH is checked by the backend: it needs an smtp:// relay, not dir:');
    if (!input.server?.tls && !auth.allow_plaintext) {
      add(['server', 'auth', 'enabled'], 'AUTH without TLS sends passwords in clear text: set server.tls (clients then authenticate after STARTTLS), or allow_plaintext: true');
    }
  }

  checkFronts(input, add);

  if (input.admin?.listen && !isLoopback(input.admin.listen.host) && input.admin.token === undefined) {
    add(['admin', 'listen'], `the admin listener on ${formatHostPort(input.admin.listen)} is not loopback: set admin.token`);
  }
}

/** At least one front listens; the SMTP proxy has a relay to relay to. */
function checkFronts(input: SemanticInput, add: (p: Array<string | number>, message: string) => void): void {
  const { server, fronts } = input;
  if (!server) return; // server itself invalid: already reported
  const proxy = server.listen.length > 0;
  if (!proxy && !fronts.milter && !fronts.policy_service) {
    add(['server', 'listen'], 'no front is configured: server.listen is empty and neither milter.listen nor policy_service.listen is set');
  }
  if (proxy && !fronts.relay) {
    add(['relay'], 'required key is missing: the SMTP proxy (server.listen) relays accepted mail to it, e.g. relay: { url: "smtp://127.0.0.1:10025" }; leave it out only with server.listen: []');
  }
}
