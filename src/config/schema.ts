/**
 * The zod schemas for the YAML shape of SPEC §2: strict objects (an unknown key is an error),
 * each section producing its part of the normalized `Config` (types.ts). Values are parsed by
 * the pure parsers of values.ts. Nothing here knows about YAML or line numbers, nor about
 * checks that need more than one field (checks.ts); parse.ts puts it all together.
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { SERIES_TYPES, type SeriesType } from '../series/types.js';
import { certificateKeyProblem, readPemFile } from './pem.js';
import type { AdminConfig, AlertConfig, BanConfig, JournalConfig, PolicyConfig, RecordRule, RelayConfig, RelayTlsConfig, ServerConfig, StoreConfig } from './types.js';
import { parseAlertHeaders, parseAlertUrl } from './control-values.js';
import { unknownKeyMessage } from './problems.js';
import {
  ValueProblem,
  isPlainObject,
  parseAdminHost,
  parseAmount,
  parseCidr,
  parseDurationValue,
  parseHostPort,
  parseMonitor,
  parseRedisSetting,
  parseRelayUrl,
  parseReply,
  parseServerName,
  parseSizeValue,
  parseTemplate,
  parseWindowRange,
} from './values.js';
import { ACTIONS, DEFAULTS, LOG_LEVELS, POLICY_MODES, RELAY_STRATEGIES, RELAY_TLS_MODES, REPLICATE_MODES, SERIES_NAME_RE, STAGES, STORE_ON_ERROR } from './vocabulary.js';

/** A schema from a pure parser: a thrown ValueProblem becomes a zod issue with its message. */
export function custom<T>(parse: (v: unknown) => T) {
  return z.unknown().transform((v, ctx): T => {
    if (v === undefined) {
      ctx.addIssue({ code: 'custom', message: 'required key is missing', input: v });
      return z.NEVER;
    }
    try {
      return parse(v);
    } catch (e) {
      if (!(e instanceof ValueProblem)) throw e;
      ctx.addIssue({ code: 'custom', message: e.message, input: v });
      return z.NEVER;
    }
  });
}

const duration = (opts: { positive: boolean }) => custom((v) => parseDurationValue(v, opts.positive));
const size = () => custom(parseSizeValue);
const int = (min: number, max?: number) => (max === undefined ? z.number().int().min(min) : z.number().int().min(min).max(max));
const nonEmpty = () => z.string().min(1);
/** A list, where a single value is accepted and wrapped. */
const listOf = <T extends z.ZodType>(item: T, min = 0, minMessage = 'must not be empty') => {
  const list = z.array(item).min(min, { message: minMessage });
  return z.unknown().transform((v, ctx): Array<z.output<T>> => {
    // A single value is checked where it stands (no "[0]" in the key path), then wrapped.
    const r = Array.isArray(v) ? list.safeParse(v, { reportInput: true }) : item.safeParse(v, { reportInput: true });
    if (r.success) return Array.isArray(r.data) ? r.data : [r.data];
    for (const issue of r.error.issues) ctx.addIssue(issue as z.core.$ZodRawIssue);
    return z.NEVER;
  });
};
const cidrList = (min = 0) => listOf(custom(parseCidr), min, 'an empty list matches nobody: list at least one CIDR or leave the key out');
const hostPort = () => custom(parseHostPort);
const stage = () => z.enum(STAGES);

function resolvePath(baseDir: string) {
  return nonEmpty().transform((p) => path.resolve(baseDir, p));
}

export function serverSchema(baseDir: string) {
  return z
    .strictObject({
      hostname: nonEmpty()
        .regex(/^\S+$/, { message: 'a host name has no spaces' })
        .default(() => os.hostname()),
      listen: listOf(hostPort(), 1, 'needs at least one "host:port"').default(() => [parseHostPort(DEFAULTS.listen)]),
      proxy_protocol: cidrList().default(() => []),
      xclient: cidrList().default(() => []),
      tls: z.strictObject({ key: resolvePath(baseDir), cert: resolvePath(baseDir) }).optional(),
      max_clients: int(1).default(DEFAULTS.max_clients),
      max_message_size: size().default(DEFAULTS.max_message_size),
      max_recipients: int(1).default(DEFAULTS.max_recipients),
      max_transactions: int(1).default(DEFAULTS.max_transactions),
      max_errors: int(1).default(DEFAULTS.max_errors),
      max_junk_commands: int(0).default(DEFAULTS.max_junk_commands),
      idle_timeout: duration({ positive: true }).default(DEFAULTS.idle_timeout),
      max_transaction_time: duration({ positive: true }).default(DEFAULTS.max_transaction_time),
      proxy_header_wait: duration({ positive: false }).default(DEFAULTS.proxy_header_wait),
      greet_delay: duration({ positive: false }).default(DEFAULTS.greet_delay),
      max_line_length: int(1).default(DEFAULTS.max_line_length),
      banner: z.string().regex(/^[^\r\n]*$/, { message: 'a banner must be a single line' }).optional(),
      auth: z
        .strictObject({ enabled: z.boolean().default(false), allow_plaintext: z.boolean().default(false) })
        .prefault({}),
    })
    .transform((s): ServerConfig => dropUndefined(s))
    .prefault({});
}

function relayTlsSchema(baseDir: string) {
  const pem = (kind: 'ca' | 'cert' | 'key') => custom((v) => readPemFile(v, baseDir, kind));
  return z
    .strictObject({
      mode: z.enum(RELAY_TLS_MODES).default('none'),
      ca: pem('ca').optional(),
      servername: custom(parseServerName).optional(),
      cert: pem('cert').optional(),
      key: pem('key').optional(),
    })
    .superRefine((t, ctx) => {
      const at = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message, input: t });
      if (t.cert && !t.key) at('cert', 'a client certificate needs its key: set relay.tls.key too');
      if (t.key && !t.cert) at('key', 'a key needs its certificate: set relay.tls.cert too');
      if (t.cert && t.key) {
        const problem = certificateKeyProblem(t.cert, t.key);
        if (problem) at('key', problem);
      }
      if (t.ca && t.mode !== 'required') at('ca', `ca is what a backend's certificate is checked against, which only mode: required does (mode is ${t.mode})`);
    })
    .transform((t): RelayTlsConfig => dropUndefined(t));
}

export function relaySchema(baseDir: string) {
  return z
    .strictObject({
      url: listOf(
        custom((v) => parseRelayUrl(v, baseDir)),
        1,
        'needs at least one backend URL',
      ),
      strategy: z.enum(RELAY_STRATEGIES).optional(),
      tls: relayTlsSchema(baseDir).optional(),
      timeout: duration({ positive: true }).default(DEFAULTS.relay_timeout),
      pool_size: int(1).default(DEFAULTS.pool_size),
      chunking: z.boolean().default(true),
    })
    .superRefine((r, ctx) => {
      const at = (p: Array<string | number>, message: string) => ctx.addIssue({ code: 'custom', path: p, message, input: r });
      const dir = r.url.findIndex((u) => u.kind === 'dir');
      if (dir >= 0) {
        if (r.url.length > 1) at(['url', dir], 'a dir: relay writes files instead of relaying: list either one dir: or smtp:// / smtps:// backends');
        for (const key of ['strategy', 'tls'] as const) if (r[key] !== undefined) at([key], `${key} applies to smtp:// and smtps:// backends, not to a dir: relay`);
        return;
      }
      const seen = new Map<string, number>();
      r.url.forEach((u, i) => {
        const first = seen.get(u.url);
        if (first !== undefined) at(['url', i], `backend ${u.url} is listed twice (first as url[${first}])`);
        else seen.set(u.url, i);
      });
      const tls = r.tls;
      if (tls && tls.mode === 'none' && !r.url.some((u) => u.kind === 'smtp' && u.implicit_tls)) {
        for (const key of ['servername', 'cert', 'key'] as const) {
          if (tls[key] !== undefined) at(['tls', key], 'TLS to the backends is off (mode: none and no smtps:// backend): set relay.tls.mode to opportunistic or required');
        }
      }
    })
    .transform(({ url, strategy, tls, timeout, pool_size, chunking }): RelayConfig => {
      const settings = { timeout, pool_size, chunking };
      const first = url[0]!;
      if (first.kind === 'dir') return { ...first, ...settings };
      const backends = url.flatMap((u) => (u.kind === 'smtp' ? [{ url: u.url, host: u.host, port: u.port, implicit_tls: u.implicit_tls }] : []));
      return { kind: 'smtp', backends, strategy: strategy ?? 'failover', tls: tls ?? { mode: 'none' }, ...settings };
    });
}

export const monitorsSchema = z.array(custom(parseMonitor)).default(() => []);

export const storeSchema = z
  .strictObject({
    redis: custom(parseRedisSetting).optional(),
    on_error: z.enum(STORE_ON_ERROR).default('local'),
    max_delay: duration({ positive: false }).default(DEFAULTS.store_max_delay),
    max_pending: int(1).default(DEFAULTS.store_max_pending),
  })
  .transform((s): StoreConfig => dropUndefined(s))
  .prefault({});

export const adminSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    listen: hostPort().default(() => parseHostPort(DEFAULTS.admin_listen)),
    token: nonEmpty().optional(),
    hosts: listOf(custom(parseAdminHost)).default(() => []),
  })
  .transform(({ enabled, listen, token, hosts }): AdminConfig => dropUndefined({ listen: enabled ? listen : undefined, token, hosts }))
  .prefault({});

export function journalSchema(baseDir: string) {
  return z
    .strictObject({ dir: resolvePath(baseDir), retention: duration({ positive: true }).default(DEFAULTS.journal_retention) })
    .transform((j): JournalConfig => j)
    .optional();
}

export const logSchema = z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).prefault({});

/** One entry of `series:` (the name is the map key). */
export const seriesEntrySchema = z.strictObject({
  type: z.enum(SERIES_TYPES as [SeriesType, ...SeriesType[]]),
  interval: duration({ positive: true }),
  windows: int(1, 1024),
  persist: z.boolean().default(false),
  serialize: z.boolean().default(false),
  replicate: z.enum(REPLICATE_MODES).default('none'),
  store_prefix: int(1, 128).optional(),
  max_keys: int(1).optional(),
  distinct: z.boolean().default(false),
});

export const recordRuleSchema = z
  .strictObject({
    on: stage(),
    series: listOf(nonEmpty(), 1, 'names no series'),
    key: custom(parseTemplate).optional(),
    count: custom(parseAmount).optional(),
    value: custom(parseTemplate).optional(),
  })
  .transform((r): RecordRule => dropUndefined(r));

/** The object form of a policy's `ban`. */
const banObjectSchema = z.strictObject({
  for: duration({ positive: true }),
  factor: z.number().min(1).max(1000).default(DEFAULTS.ban_factor),
  max: duration({ positive: true }).optional(),
});

/** `ban: 10m` (no escalation) or `ban: { for: 10m, factor: 2, max: 1d }`. */
export const banSchema = z.unknown().transform((v, ctx): BanConfig => {
  if (!isPlainObject(v)) {
    try {
      const s = parseDurationValue(v, true);
      return { for: s, factor: 1, max: s };
    } catch (e) {
      if (!(e instanceof ValueProblem)) throw e;
      ctx.addIssue({ code: 'custom', message: `${e.message} (or a map such as { for: 10m, factor: 2, max: 1d })`, input: v });
      return z.NEVER;
    }
  }
  const r = banObjectSchema.safeParse(v, { reportInput: true });
  if (!r.success) {
    for (const issue of r.error.issues) {
      if (issue.code !== 'unrecognized_keys') ctx.addIssue(issue as z.core.$ZodRawIssue);
      else for (const key of issue.keys) ctx.addIssue({ code: 'custom', message: unknownKeyMessage(key, Object.keys(banObjectSchema.shape)), input: v, path: [key] });
    }
    return z.NEVER;
  }
  const { for: seconds, factor } = r.data;
  const max = r.data.max ?? Math.max(DEFAULTS.ban_max, seconds);
  if (max < seconds) {
    ctx.addIssue({ code: 'custom', message: `max (${max}s) must be at least for (${seconds}s)`, input: v, path: ['max'] });
    return z.NEVER;
  }
  return { for: seconds, factor, max };
});

export const policySchema = z
  .strictObject({
    name: z.string().regex(SERIES_NAME_RE, { message: 'a policy name is 1-128 letters, digits, _ . : , -' }),
    on: stage(),
    series: nonEmpty().optional(),
    key: custom(parseTemplate).optional(),
    mask: int(0).optional(),
    windows: custom(parseWindowRange).default(() => [0, 0] as [number, number]),
    above: z.number().min(0).optional(),
    client: cidrList(1).optional(),
    not_client: cidrList(1).optional(),
    action: z.enum(ACTIONS),
    delay: duration({ positive: true }).optional(),
    reply: custom(parseReply).optional(),
    mode: z.enum(POLICY_MODES).default('enforce'),
    ban: banSchema.optional(),
  })
  .transform((p): PolicyConfig => dropUndefined(p));

/** One `alerts:` entry. */
export const alertSchema = z
  .strictObject({
    name: z.string().regex(SERIES_NAME_RE, { message: 'an alert name is 1-128 letters, digits, _ . : , -' }),
    url: custom(parseAlertUrl),
    policies: listOf(nonEmpty(), 1, 'names no policy: leave the key out to alert on every policy').optional(),
    min_interval: duration({ positive: false }).default(DEFAULTS.alert_min_interval),
    headers: custom(parseAlertHeaders).default(() => ({})),
    timeout: duration({ positive: true }).default(DEFAULTS.alert_timeout),
    retries: int(0, 10).default(DEFAULTS.alert_retries),
  })
  .transform((a): AlertConfig => dropUndefined(a));

/** The top-level keys and how each is parsed (series, record and policies item by item). */
export function topLevelSchemas(baseDir: string) {
  return {
    server: serverSchema(baseDir),
    relay: relaySchema(baseDir),
    state_dir: resolvePath(baseDir).default(path.resolve(baseDir, DEFAULTS.state_dir)),
    log_dir: resolvePath(baseDir).default(path.resolve(baseDir, DEFAULTS.log_dir)),
    persist_interval: duration({ positive: true }).default(DEFAULTS.persist_interval),
    log_retention: duration({ positive: true }).default(DEFAULTS.log_retention),
    monitors: monitorsSchema,
    store: storeSchema,
    admin: adminSchema,
    log: logSchema,
    journal: journalSchema(baseDir),
    series: z.record(z.string(), seriesEntrySchema).default(() => ({})),
    record: z.array(recordRuleSchema).default(() => []),
    policies: z.array(policySchema).default(() => []),
    protected: cidrList().default(() => []),
    alerts: z.array(alertSchema).default(() => []),
  };
}

/**
 * The whole YAML shape as one strict zod schema (without the cross-field checks). Handy for
 * tooling; the loader uses `parseConfigObject`, which parses item by item to report every
 * problem at once and then runs the cross-field checks.
 */
export function configSchema(baseDir: string) {
  return z.strictObject(topLevelSchemas(baseDir));
}

export function dropUndefined<T extends object>(o: T): T {
  const out = {} as T;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
