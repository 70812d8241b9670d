/**
 * The configuration schema: zod schemas for the YAML shape of SPEC §2 (strict objects, so an
 * unknown key is an error), the normalized `Config` type they produce, and the semantic checks
 * that need more than one field (series references, masks, window ranges, replies).
 *
 * Nothing here knows about YAML or line numbers: every problem carries the key path into the
 * raw document (`['policies', 2, 'mask']`) and load.ts turns that into `file:line:col`.
 *
 * Sections, series entries, record rules and policies are parsed one by one so that a broken
 * policy does not hide the problems of the next one: `parseConfigObject` reports them all.
 */
import os from 'node:os';
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { SERIES_TYPES, type Replicate, type SeriesType } from '../series/types.js';
import { parseDuration, parseSize } from './duration.js';

// ---------------------------------------------------------------------------------------------
// Vocabulary

export const STAGES = ['connect', 'helo', 'auth_fail', 'mail', 'rcpt', 'rcpt_rejected', 'data', 'reject'] as const;
export type Stage = (typeof STAGES)[number];

export const ACTIONS = ['accept', 'tempfail', 'reject', 'tarpit'] as const;
export type Action = (typeof ACTIONS)[number];

export const POLICY_MODES = ['enforce', 'shadow'] as const;
export const REPLICATE_MODES = ['none', 'cluster', 'manager'] as const satisfies readonly Replicate[];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const STORE_ON_ERROR = ['local', 'accept', 'tempfail'] as const;

/** Placeholders a key template may use. */
export const KEY_PLACEHOLDERS = ['ip', 'helo', 'mail_from', 'mail_from_domain', 'rcpt', 'rcpt_domain', 'auth_user'] as const;
export type KeyPlaceholder = (typeof KEY_PLACEHOLDERS)[number];

/**
 * Placeholders that have a value at each stage. Stages after RCPT (and `reject`, which can
 * follow any stage) may use them all; the recorder renders a missing value as an empty string.
 */
export const STAGE_PLACEHOLDERS: Record<Stage, readonly KeyPlaceholder[]> = {
  connect: ['ip'],
  helo: ['ip', 'helo'],
  auth_fail: ['ip', 'helo', 'auth_user'],
  mail: ['ip', 'helo', 'auth_user', 'mail_from', 'mail_from_domain'],
  rcpt: KEY_PLACEHOLDERS,
  rcpt_rejected: KEY_PLACEHOLDERS,
  data: KEY_PLACEHOLDERS,
  reject: KEY_PLACEHOLDERS,
};

export const SERIES_NAME_RE = /^[A-Za-z0-9_.:,-]{1,128}$/;

/**
 * The built-in gauges of concurrent sessions per client prefix (policies only; windows ignored):
 * `sessions` for IPv4 clients, `sessions6` for IPv6 clients, typed like the cidr series they mirror.
 */
export const SESSION_GAUGES = { sessions: 'cidr', sessions6: 'cidr_ipv6' } as const satisfies Record<string, SeriesType>;
export type SessionGauge = keyof typeof SESSION_GAUGES;

export function isSessionGauge(name: string | undefined): name is SessionGauge {
  return name !== undefined && Object.hasOwn(SESSION_GAUGES, name);
}

/**
 * Built-in per-monitor series: `connections:300,6`, `connections6:300,6`, … The IPv6 ones keep
 * /64 prefixes, like the default IPv6 series: a client cycling addresses in its /64 is one key
 * (and one key costs about what an IPv4 one does, not 1.2 KB).
 */
export const MONITOR_SERIES_BASES = [
  { base: 'connections', type: 'cidr' },
  { base: 'receptions', type: 'cidr' },
  { base: 'rejections', type: 'cidr' },
  { base: 'connections6', type: 'cidr_ipv6', store_prefix: 64 },
  { base: 'receptions6', type: 'cidr_ipv6', store_prefix: 64 },
  { base: 'rejections6', type: 'cidr_ipv6', store_prefix: 64 },
] as const satisfies ReadonlyArray<{ base: string; type: SeriesType; store_prefix?: number }>;

export const DEFAULTS = {
  listen: '127.0.0.1:2525',
  max_clients: 2000,
  max_message_size: 25 * 1024 * 1024,
  max_recipients: 100,
  max_transactions: 100,
  max_errors: 20,
  max_junk_commands: 100,
  idle_timeout: 300,
  greet_delay: 0,
  max_line_length: 2048,
  relay_timeout: 60,
  pool_size: 4,
  state_dir: './var/state',
  log_dir: './var/series-log',
  persist_interval: 5,
  log_retention: 7 * 86_400,
  store_max_delay: 1,
  store_max_pending: 100,
  admin_listen: '127.0.0.1:8025',
} as const;

// ---------------------------------------------------------------------------------------------
// The normalized configuration

export interface HostPort {
  host: string;
  port: number;
}

export interface ServerConfig {
  hostname: string;
  listen: HostPort[];
  /** Peers allowed to send a PROXY header, as normalized CIDR text (a bare IP becomes /32 or /128). */
  proxy_protocol: string[];
  /** Peers allowed to use XCLIENT, as normalized CIDR text. */
  xclient: string[];
  /** Absolute paths. */
  tls?: { key: string; cert: string };
  max_clients: number;
  /** Bytes. */
  max_message_size: number;
  max_recipients: number;
  /** MAIL commands per connection; more get a 421 and the connection closes. */
  max_transactions: number;
  /** 4xx/5xx replies per connection before a 421 and close. */
  max_errors: number;
  /** RSET, NOOP, VRFY, EXPN, HELP, HELO, EHLO per connection before each counts as an error. */
  max_junk_commands: number;
  /** Seconds. */
  idle_timeout: number;
  /**
   * Seconds to wait before the 220 greeting; a client that talks before it gets 421 (early-talker /
   * pregreet test). 0 greets as soon as the connect stage has decided.
   */
  greet_delay: number;
  max_line_length: number;
  banner?: string;
  /**
   * AUTH PLAIN / LOGIN offered to clients and checked by the backend: a session that
   * authenticates keeps its own backend connection, authenticated as that user.
   */
  auth: { enabled: boolean; allow_plaintext: boolean };
}

export interface RelayConfig {
  /** Normalized: `smtp://host:port` (IPv6 host in brackets) or `dir:/absolute/path`. */
  url: string;
  kind: 'smtp' | 'dir';
  /** smtp only; an IPv6 host without brackets. */
  host?: string;
  /** smtp only. */
  port?: number;
  /** dir only; absolute. */
  dir?: string;
  /** Seconds. */
  timeout: number;
  pool_size: number;
  /** smtp only: send messages with BDAT (RFC 3030) when the backend offers CHUNKING. */
  chunking: boolean;
}

export interface MonitorConfig {
  /** Seconds per window. */
  interval: number;
  windows: number;
  /** Canonical "interval,windows" text, the suffix of the monitor's series names. */
  text: string;
}

export interface StoreConfig {
  redis?: string | string[];
  on_error: (typeof STORE_ON_ERROR)[number];
  /** Seconds. */
  max_delay: number;
  max_pending: number;
}

export interface AdminConfig {
  /** Undefined when the admin listener is disabled. */
  listen?: HostPort;
  token?: string;
  /** Names accepted in the Host header besides IP literals (and localhost on loopback); lower case. */
  hosts: string[];
}

export interface LogConfig {
  level: (typeof LOG_LEVELS)[number];
}

export interface SeriesConfig {
  name: string;
  type: SeriesType;
  /** Seconds per window. */
  interval: number;
  windows: number;
  persist: boolean;
  serialize: boolean;
  replicate: Replicate;
  store_prefix?: number;
  max_keys?: number;
}

export interface RecordRule {
  on: Stage;
  series: string[];
  key?: string;
  count: number;
}

export interface PolicyConfig {
  name: string;
  on: Stage;
  series?: string;
  key?: string;
  mask?: number;
  /** [start, end] window range, inclusive. */
  windows: [number, number];
  above?: number;
  /** Normalized CIDR text. */
  client?: string[];
  not_client?: string[];
  action: Action;
  /** Seconds (tarpit). */
  delay?: number;
  reply?: string;
  mode: (typeof POLICY_MODES)[number];
}

export interface Config {
  /** Absolute path of the loaded file. */
  file: string;
  /** Valid but probably unintended settings, as `file:line:col key: message` (check-config prints them). */
  warnings: string[];
  server: ServerConfig;
  relay: RelayConfig;
  /** Absolute. */
  state_dir: string;
  /** Absolute. */
  log_dir: string;
  /** Seconds. */
  persist_interval: number;
  /** Seconds. */
  log_retention: number;
  monitors: MonitorConfig[];
  store: StoreConfig;
  admin: AdminConfig;
  log: LogConfig;
  series: Record<string, SeriesConfig>;
  record: RecordRule[];
  policies: PolicyConfig[];
}

/** One problem, located by its key path in the raw document. */
export interface PathProblem {
  path: Array<string | number>;
  message: string;
}

// ---------------------------------------------------------------------------------------------
// Value parsers (pure; they throw ValueProblem with an operator-facing message)

class ValueProblem extends Error {}

/** Short description of a raw YAML value for messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return typeof v;
}

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

function isIPv4(text: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(text);
}

function isIPv6(text: string): boolean {
  return text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text);
}

/** Parses "host:port" / "[v6]:port". Port 0 is allowed (an ephemeral port, for tests). */
export function parseHostPort(v: unknown): HostPort {
  if (typeof v !== 'string') {
    throw new ValueProblem(`expected "host:port" such as "0.0.0.0:2525" or "[::]:2525", got ${describeValue(v)}`);
  }
  const text = v.trim();
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(text);
  const plain = /^([^:[\]]*):([^:]*)$/.exec(text);
  const bare = text.replace(/^\[(.*)\]$/, '$1');
  if (!bracketed && isIPv6(bare)) {
    throw new ValueProblem(`missing port in ${describeValue(v)}: an IPv6 address goes in brackets, e.g. "[${bare}]:2525"`);
  }
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
    if (!isIPv6(host)) throw new ValueProblem(`"${host}" in ${describeValue(v)} is not an IPv6 address`);
  } else if (plain) {
    host = plain[1]!;
    portText = plain[2]!;
    if (host === '') throw new ValueProblem(`missing host in ${describeValue(v)}: write "0.0.0.0${text}" or "127.0.0.1${text}"`);
    if (/^[\d.]+$/.test(host) ? !isIPv4(host) : !HOSTNAME_RE.test(host)) {
      throw new ValueProblem(`"${host}" in ${describeValue(v)} is neither an IPv4 address nor a host name`);
    }
  } else if (/^\d+$/.test(text)) {
    throw new ValueProblem(`missing host in ${describeValue(v)}: write "0.0.0.0:${text}" or "127.0.0.1:${text}"`);
  } else if (!text.includes(':')) {
    throw new ValueProblem(`missing port in ${describeValue(v)}: write "${text}:2525"`);
  } else {
    throw new ValueProblem(`expected "host:port" such as "0.0.0.0:2525" or "[::]:2525", got ${describeValue(v)}`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new ValueProblem(`port "${portText}" in ${describeValue(v)} is not a port number (0..65535)`);
  }
  return { host, port: Number(portText) };
}

/** One `admin.hosts` entry: a host name, no port (any port is accepted), lower case. */
function parseAdminHost(v: unknown): string {
  if (typeof v !== 'string') throw new ValueProblem(`expected a host name such as "gateway.example.net", got ${describeValue(v)}`);
  const name = v.trim().toLowerCase().replace(/\.$/, '');
  if (isIPv4(name) || isIPv6(name.replace(/^\[(.*)\]$/, '$1'))) {
    throw new ValueProblem(`${describeValue(v)} is an IP address: IP addresses are always accepted in Host, list only names here`);
  }
  if (/:\d*$/.test(name)) throw new ValueProblem(`${describeValue(v)}: list the name without a port (any port is accepted)`);
  if (!HOSTNAME_RE.test(name)) throw new ValueProblem(`${describeValue(v)} is not a host name such as "gateway.example.net" (no wildcards)`);
  return name;
}

/** "host:port" text for a HostPort (IPv6 hosts in brackets). */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/**
 * Validates a CIDR or a bare address and returns it normalized: host bits cleared, IPv6
 * compressed (RFC 5952), a bare address as /32 or /128, and IPv4-mapped IPv6 folded to IPv4
 * (`::ffff:10.0.0.0/104` → `10.0.0.0/8`). Returns null for anything else.
 */
export function normalizeCidr(text: string): string | null {
  const t = text.trim();
  const slash = t.indexOf('/');
  const addr = slash < 0 ? t : t.slice(0, slash);
  const maskText = slash < 0 ? undefined : t.slice(slash + 1);
  if (maskText !== undefined && !/^\d{1,3}$/.test(maskText)) return null;
  if (isIPv4(addr)) {
    const bits = maskText === undefined ? 32 : Number(maskText);
    if (bits > 32) return null;
    return `${ipaddr.IPv4.networkAddressFromCIDR(`${addr}/${bits}`).toString()}/${bits}`;
  }
  if (isIPv6(addr)) {
    const bits = maskText === undefined ? 128 : Number(maskText);
    if (bits > 128) return null;
    const v6 = ipaddr.IPv6.parse(addr);
    if (v6.isIPv4MappedAddress() && bits >= 96) {
      const v4 = v6.toIPv4Address().toString();
      return `${ipaddr.IPv4.networkAddressFromCIDR(`${v4}/${bits - 96}`).toString()}/${bits - 96}`;
    }
    return `${ipaddr.IPv6.networkAddressFromCIDR(`${addr}/${bits}`).toString()}/${bits}`;
  }
  return null;
}

function parseCidr(v: unknown): string {
  if (typeof v !== 'string') {
    throw new ValueProblem(`expected an address or CIDR such as "192.0.2.0/24" or "2001:db8::/32", got ${describeValue(v)}`);
  }
  const n = normalizeCidr(v);
  if (n === null) {
    throw new ValueProblem(`${describeValue(v)} is not a valid address or CIDR (e.g. "192.0.2.0/24", "2001:db8::/32", "192.0.2.7")`);
  }
  return n;
}

/** The placeholders a key template uses, or a ValueProblem for unknown ones and stray braces. */
export function templatePlaceholders(template: string): KeyPlaceholder[] {
  const used: KeyPlaceholder[] = [];
  const re = /\{([^{}]*)\}/g;
  for (const m of template.matchAll(re)) {
    const name = m[1]!;
    if (!(KEY_PLACEHOLDERS as readonly string[]).includes(name)) {
      throw new ValueProblem(
        `unknown placeholder {${name}} in key template ${describeValue(template)}; known: ${KEY_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`,
      );
    }
    used.push(name as KeyPlaceholder);
  }
  if (/[{}]/.test(template.replace(re, ''))) throw new ValueProblem(`unbalanced brace in key template ${describeValue(template)}`);
  return used;
}

function parseTemplate(v: unknown): string {
  if (typeof v !== 'string' || v === '') {
    throw new ValueProblem(`expected a key template such as "{mail_from_domain}", got ${describeValue(v)}`);
  }
  templatePlaceholders(v);
  return v;
}

function parseDurationValue(v: unknown, positive: boolean): number {
  if (typeof v !== 'number' && typeof v !== 'string') {
    throw new ValueProblem(`expected a duration such as 30, "30s", "5m", "1h", got ${describeValue(v)}`);
  }
  let s: number;
  try {
    s = parseDuration(v);
  } catch (e) {
    throw new ValueProblem((e as Error).message);
  }
  if (positive && s <= 0) throw new ValueProblem(`duration must be greater than 0, got ${describeValue(v)}`);
  return s;
}

function parseSizeValue(v: unknown): number {
  if (typeof v !== 'number' && typeof v !== 'string') {
    throw new ValueProblem(`expected a size such as 25MB or 1048576, got ${describeValue(v)}`);
  }
  let n: number;
  try {
    n = parseSize(v);
  } catch (e) {
    throw new ValueProblem((e as Error).message);
  }
  if (n <= 0) throw new ValueProblem(`size must be greater than 0, got ${describeValue(v)}`);
  return n;
}

/** "300,6" or "5m,6" → { interval: 300, windows: 6, text: "300,6" }. */
export function parseMonitor(v: unknown): MonitorConfig {
  if (typeof v !== 'string') throw new ValueProblem(`expected "interval,windows" such as "300,6", got ${describeValue(v)}`);
  const parts = v.split(',');
  if (parts.length !== 2) throw new ValueProblem(`expected "interval,windows" such as "300,6", got ${describeValue(v)}`);
  const interval = parseDurationValue(parts[0]!.trim(), true);
  const wt = parts[1]!.trim();
  if (!/^\d+$/.test(wt) || Number(wt) < 1 || Number(wt) > 1024) {
    throw new ValueProblem(`windows in monitor ${describeValue(v)} must be an integer from 1 to 1024`);
  }
  const windows = Number(wt);
  return { interval, windows, text: `${interval},${windows}` };
}

function parseRelayUrl(v: unknown, baseDir: string): Pick<RelayConfig, 'url' | 'kind' | 'host' | 'port' | 'dir'> {
  const help = 'expected "smtp://host:port" (IPv6 host in brackets) or "dir:PATH"';
  if (typeof v !== 'string') throw new ValueProblem(`${help}, got ${describeValue(v)}`);
  if (v.startsWith('dir:')) {
    const p = v.slice(4).trim();
    if (p === '') throw new ValueProblem(`"dir:" needs a directory, e.g. "dir:./var/mail"`);
    const dir = path.resolve(baseDir, p);
    return { url: `dir:${dir}`, kind: 'dir', dir };
  }
  const m = /^smtp:\/\/(.*?)\/?$/.exec(v.trim());
  if (!m) throw new ValueProblem(`${help}, got ${describeValue(v)}`);
  let hp: HostPort;
  try {
    hp = parseHostPort(m[1]!);
  } catch (e) {
    throw new ValueProblem(`relay ${describeValue(v)}: ${(e as Error).message}`);
  }
  if (hp.port === 0) throw new ValueProblem(`relay ${describeValue(v)}: port 0 is not a backend port`);
  return { url: `smtp://${formatHostPort(hp)}`, kind: 'smtp', host: hp.host, port: hp.port };
}

function parseRedisUrl(v: unknown): string {
  if (typeof v === 'string') {
    try {
      const u = new URL(v);
      if ((u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '') return v;
    } catch {
      // fall through
    }
  }
  throw new ValueProblem(`expected a Redis URL such as "redis://127.0.0.1:6379", got ${describeValue(v)}`);
}

/** One Redis URL, or a non-empty list of them (Redis Cluster seed nodes). */
function parseRedisSetting(v: unknown): string | string[] {
  if (!Array.isArray(v)) return parseRedisUrl(v);
  if (v.length === 0) throw new ValueProblem('needs at least one Redis URL');
  return v.map((u, i) => {
    try {
      return parseRedisUrl(u);
    } catch (e) {
      throw new ValueProblem(`entry ${i}: ${(e as Error).message}`);
    }
  });
}

function parseWindowRange(v: unknown): [number, number] {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
  if (!Array.isArray(v) || v.length !== 2 || !ok(v[0]) || !ok(v[1])) {
    throw new ValueProblem(`expected a window range [start, end] such as [0, 3], got ${Array.isArray(v) ? JSON.stringify(v) : describeValue(v)}`);
  }
  if (v[0] > v[1]) throw new ValueProblem(`window range [${v[0]}, ${v[1]}] starts after it ends`);
  return [v[0], v[1]];
}

function parseReply(v: unknown): string {
  if (typeof v !== 'string') throw new ValueProblem(`expected a reply such as "451 4.7.1 try again later", got ${describeValue(v)}`);
  if (/[\r\n]/.test(v)) throw new ValueProblem('a reply must be a single line');
  if (!/^[2-5]\d\d(?: |$)/.test(v)) {
    throw new ValueProblem(`reply ${describeValue(v)} must start with a 3-digit SMTP code, e.g. "451 4.7.1 try again later"`);
  }
  const enhanced = /^\d{3} (\d)\.\d{1,3}\.\d{1,3}(?: |$)/.exec(v);
  if (enhanced && enhanced[1] !== v[0]) {
    throw new ValueProblem(`reply ${describeValue(v)}: enhanced status ${enhanced[1]}.x.x does not match reply code ${v.slice(0, 3)}`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// zod building blocks

/** A schema from a pure parser: a thrown ValueProblem becomes a zod issue with its message. */
function custom<T>(parse: (v: unknown) => T) {
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

export function relaySchema(baseDir: string) {
  return z
    .strictObject({
      url: custom((v) => parseRelayUrl(v, baseDir)),
      timeout: duration({ positive: true }).default(DEFAULTS.relay_timeout),
      pool_size: int(1).default(DEFAULTS.pool_size),
      chunking: z.boolean().default(true),
    })
    .transform(({ url, timeout, pool_size, chunking }): RelayConfig => dropUndefined({ ...url, timeout, pool_size, chunking }));
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
});

export const recordRuleSchema = z
  .strictObject({
    on: stage(),
    series: listOf(nonEmpty(), 1, 'names no series'),
    key: custom(parseTemplate).optional(),
    count: z.number().int().refine((n) => n !== 0, { message: 'count must not be 0' }).default(1),
  })
  .transform((r): RecordRule => dropUndefined(r));

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
  })
  .transform((p): PolicyConfig => dropUndefined(p));

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
    series: z.record(z.string(), seriesEntrySchema).default(() => ({})),
    record: z.array(recordRuleSchema).default(() => []),
    policies: z.array(policySchema).default(() => []),
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

/** A deep copy of `value` without the unknown keys that zod reported. */
function withoutKeys(value: unknown, issues: readonly z.core.$ZodIssue[]): unknown {
  const copy = structuredClone(value);
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    let node: unknown = copy;
    for (const seg of issue.path) node = (node as Record<PropertyKey, unknown> | undefined)?.[seg];
    if (isPlainObject(node)) for (const k of issue.keys) delete node[k];
  }
  return copy;
}

function dropUndefined<T extends object>(o: T): T {
  const out = {} as T;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

// ---------------------------------------------------------------------------------------------
// zod issues → problems

interface ZodDefLike {
  type: string;
  shape?: Record<string, unknown>;
  innerType?: unknown;
  in?: unknown;
  out?: unknown;
  element?: unknown;
  valueType?: unknown;
  options?: unknown[];
}

function defOf(schema: unknown): ZodDefLike | undefined {
  return (schema as { _zod?: { def?: ZodDefLike } } | undefined)?._zod?.def;
}

/** The keys a strict object accepts at `path` inside `schema` (for "did you mean" hints). */
function knownKeysAt(schema: unknown, p: ReadonlyArray<PropertyKey>): string[] {
  const def = defOf(schema);
  if (!def) return [];
  switch (def.type) {
    case 'object':
      if (p.length === 0) return Object.keys(def.shape ?? {});
      return knownKeysAt(def.shape?.[String(p[0])], p.slice(1));
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
      return knownKeysAt(def.innerType, p);
    case 'pipe': {
      const a = knownKeysAt(def.in, p);
      return a.length > 0 ? a : knownKeysAt(def.out, p);
    }
    case 'array':
      return p.length === 0 ? [] : knownKeysAt(def.element, p.slice(1));
    case 'record':
      return p.length === 0 ? [] : knownKeysAt(def.valueType, p.slice(1));
    case 'union':
      for (const o of def.options ?? []) {
        const k = knownKeysAt(o, p);
        if (k.length > 0) return k;
      }
      return [];
    default:
      return [];
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  if (best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3))) return best;
  // "logging" → "log", "tls_cert" → "tls": a known key the word starts with.
  return candidates.find((c) => c.length >= 3 && word.toLowerCase().startsWith(c.toLowerCase()));
}

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'text',
  boolean: 'true or false',
  object: 'a map',
  array: 'a list',
  tuple: 'a list',
  record: 'a map',
};

function issueMessage(issue: z.core.$ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  const missing = input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_value');
  if (missing) return 'required key is missing';
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describeValue(input)}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => String(v)).join(', ')}, got ${describeValue(input)}`;
    case 'too_small':
      if (issue.origin === 'array') return issue.message;
      if (issue.origin === 'string') return 'must not be empty';
      return `must be ${issue.inclusive ? 'at least' : 'greater than'} ${String(issue.minimum)}, got ${describeValue(input)}`;
    case 'too_big':
      if (issue.origin === 'array') return issue.message;
      return `must be ${issue.inclusive ? 'at most' : 'less than'} ${String(issue.maximum)}, got ${describeValue(input)}`;
    default:
      return issue.message;
  }
}

/** Turns zod issues into path problems; unknown keys become one problem each, at the key. */
export function issuesToProblems(issues: readonly z.core.$ZodIssue[], prefix: Array<string | number>, schema: unknown): PathProblem[] {
  const out: PathProblem[] = [];
  for (const issue of issues) {
    const p = [...prefix, ...issue.path.map((s) => (typeof s === 'number' ? s : String(s)))];
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, issue.path);
      for (const key of issue.keys) {
        const hint = suggest(key, known);
        const list = known.length > 0 ? `; known keys: ${known.join(', ')}` : '';
        out.push({ path: [...p, key], message: `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : list}` });
      }
      continue;
    }
    out.push({ path: p, message: issueMessage(issue) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing the whole document

const TOP_LEVEL_KEYS = [
  'server',
  'relay',
  'state_dir',
  'log_dir',
  'persist_interval',
  'log_retention',
  'monitors',
  'store',
  'admin',
  'log',
  'series',
  'record',
  'policies',
] as const;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The series a config can refer to: the defined ones and the built-in monitor series. */
export function monitorSeries(
  monitors: readonly MonitorConfig[],
): Array<Pick<SeriesConfig, 'name' | 'type' | 'interval' | 'windows' | 'store_prefix'>> {
  return monitors.flatMap((m) =>
    MONITOR_SERIES_BASES.map((b) => ({
      name: `${b.base}:${m.text}`,
      type: b.type,
      interval: m.interval,
      windows: m.windows,
      ...('store_prefix' in b ? { store_prefix: b.store_prefix } : {}),
    })),
  );
}

export interface ParseResult {
  config?: Config;
  problems: PathProblem[];
}

/**
 * Validates and normalizes a raw config object (what YAML parsing produced). Paths in the
 * config are resolved relative to the directory of `file`. Returns the config only when there
 * are no problems.
 */
export function parseConfigObject(raw: unknown, file: string): ParseResult {
  const absFile = path.resolve(file);
  const baseDir = path.dirname(absFile);
  const problems: PathProblem[] = [];
  const sections = topLevelSchemas(baseDir);

  if (!isPlainObject(raw)) {
    problems.push({ path: [], message: `the configuration must be a map of keys (server, relay, series, …), got ${describeValue(raw)}` });
    return { problems };
  }
  const known = TOP_LEVEL_KEYS as readonly string[];
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      const hint = suggest(key, known);
      problems.push({ path: [key], message: `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : `; known keys: ${known.join(', ')}`}` });
    }
  }

  const parse = <S extends z.ZodType>(schema: S, value: unknown, at: Array<string | number>): z.output<S> | undefined => {
    const r = schema.safeParse(value, { reportInput: true });
    if (r.success) return r.data;
    problems.push(...issuesToProblems(r.error.issues, at, schema));
    // Unknown keys only: still check the rest of the item (names, references, replies).
    if (r.error.issues.every((i) => i.code === 'unrecognized_keys')) {
      const again = schema.safeParse(withoutKeys(value, r.error.issues));
      if (again.success) return again.data;
    }
    return undefined;
  };

  const out: Partial<Omit<Config, 'file'>> = {};
  for (const key of ['server', 'relay', 'state_dir', 'log_dir', 'persist_interval', 'log_retention', 'monitors', 'store', 'admin', 'log'] as const) {
    // `server:` with every child commented out is null in YAML: treat it as absent.
    const v = parse(sections[key], raw[key] ?? undefined, [key]);
    if (v !== undefined) (out as Record<string, unknown>)[key] = v;
  }

  // series: entry by entry; an invalid entry is still "defined" (null) so references to it
  // do not add a second, misleading "unknown series" problem.
  const series = new Map<string, SeriesConfig | null>();
  if (raw.series !== undefined && raw.series !== null && !isPlainObject(raw.series)) {
    problems.push({ path: ['series'], message: `expected a map of series definitions, got ${describeValue(raw.series)}` });
  } else if (isPlainObject(raw.series)) {
    for (const [name, def] of Object.entries(raw.series)) {
      if (!SERIES_NAME_RE.test(name)) {
        problems.push({ path: ['series', name], message: `series name "${name}" must be 1-128 letters, digits, _ . : , -` });
      }
      const v = parse(seriesEntrySchema, def, ['series', name]);
      series.set(name, v ? { name, ...dropUndefined(v) } : null);
    }
  }

  const items = <T>(key: 'record' | 'policies', schema: z.ZodType<T>): Array<T | null> => {
    const list = raw[key];
    if (list === undefined || list === null) return [];
    if (!Array.isArray(list)) {
      problems.push({ path: [key], message: `expected a list, got ${describeValue(list)}` });
      return [];
    }
    return list.map((item, i) => parse(schema, item, [key, i]) ?? null);
  };
  const record = items('record', recordRuleSchema);
  const policies = items('policies', policySchema);

  checkSemantics({ server: out.server, relay: out.relay, series, record, policies, monitors: out.monitors, store: out.store, admin: out.admin }, problems);

  if (problems.length > 0) return { problems };
  const config: Config = {
    file: absFile,
    warnings: [],
    ...(out as Omit<Config, 'file' | 'warnings' | 'series' | 'record' | 'policies'>),
    series: Object.fromEntries([...series].map(([k, v]) => [k, v!])),
    record: record as RecordRule[],
    policies: policies as PolicyConfig[],
  };
  return { config, problems };
}

// ---------------------------------------------------------------------------------------------
// Cross-field checks

interface SemanticInput {
  server: ServerConfig | undefined;
  relay: RelayConfig | undefined;
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

function checkSemantics(input: SemanticInput, problems: PathProblem[]): void {
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
  ): { type: SeriesType; windows: number; gauge?: true } | undefined => {
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

  const checkKeyForStage = (key: string, on: Stage, at: Array<string | number>) => {
    const allowed = STAGE_PLACEHOLDERS[on];
    for (const p of templatePlaceholders(key)) {
      if (!allowed.includes(p)) add(at, `{${p}} has no value at stage "${on}"; available there: ${allowed.map((a) => `{${a}}`).join(' ')}`);
    }
  };

  input.record.forEach((r, i) => {
    if (!r) return;
    if (r.key !== undefined) checkKeyForStage(r.key, r.on, ['record', i, 'key']);
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

  if (input.admin?.listen && !isLoopback(input.admin.listen.host) && input.admin.token === undefined) {
    add(['admin', 'listen'], `the admin listener on ${formatHostPort(input.admin.listen)} is not loopback: set admin.token`);
  }
}
