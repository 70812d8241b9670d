/**
 * The config vocabulary: stages, actions, modes, key placeholders, the built-in series names
 * (session gauges, per-monitor series) and the defaults. Plain constants; no parsing here.
 */
import type { Replicate, SeriesType } from '../series/types.js';

export const STAGES = ['connect', 'helo', 'auth_fail', 'mail', 'rcpt', 'rcpt_rejected', 'data', 'reject'] as const;
export type Stage = (typeof STAGES)[number];

export const ACTIONS = ['accept', 'tempfail', 'reject', 'tarpit'] as const;
export type Action = (typeof ACTIONS)[number];

export const POLICY_MODES = ['enforce', 'shadow'] as const;
export const REPLICATE_MODES = ['none', 'cluster', 'manager'] as const satisfies readonly Replicate[];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const STORE_ON_ERROR = ['local', 'accept', 'tempfail'] as const;
/** What a store failure does to a decision (store.on_error). */
export type StoreOnError = (typeof STORE_ON_ERROR)[number];

/** How a transaction picks among several relay backends. */
export const RELAY_STRATEGIES = ['failover', 'round_robin'] as const;
export type RelayStrategy = (typeof RELAY_STRATEGIES)[number];

/** TLS to the backend: none, STARTTLS when offered (certificate not checked), or STARTTLS with a checked certificate. */
export const RELAY_TLS_MODES = ['none', 'opportunistic', 'required'] as const;
export type RelayTlsMode = (typeof RELAY_TLS_MODES)[number];

/** Placeholders a key template may use. */
export const KEY_PLACEHOLDERS = ['ip', 'net', 'helo', 'mail_from', 'mail_from_domain', 'rcpt', 'rcpt_domain', 'auth_user'] as const;
export type KeyPlaceholder = (typeof KEY_PLACEHOLDERS)[number];

/**
 * Placeholders that have a value at each stage. Stages after RCPT (and `reject`, which can
 * follow any stage) may use them all; the recorder renders a missing value as an empty string.
 * `{net}` is the client's network: its /24 for IPv4, its /64 for IPv6 (`192.0.2.0/24`).
 */
export const STAGE_PLACEHOLDERS: Record<Stage, readonly KeyPlaceholder[]> = {
  connect: ['ip', 'net'],
  helo: ['ip', 'net', 'helo'],
  auth_fail: ['ip', 'net', 'helo', 'auth_user'],
  mail: ['ip', 'net', 'helo', 'auth_user', 'mail_from', 'mail_from_domain'],
  rcpt: KEY_PLACEHOLDERS,
  rcpt_rejected: KEY_PLACEHOLDERS,
  data: KEY_PLACEHOLDERS,
  reject: KEY_PLACEHOLDERS,
};

/** Prefix lengths of `{net}`: the client's network. */
export const NET_MASKS = { 4: 24, 6: 64 } as const;

/**
 * What a record rule may add instead of a fixed number (`count:`), and the stages that know it:
 * `rcpts` the message's accepted recipients, `bytes` its size. Both are facts of the message,
 * so of the data stage (bytes are added once the message has been received and accepted).
 */
export const RECORD_AMOUNTS = ['rcpts', 'bytes'] as const;
export type RecordAmount = (typeof RECORD_AMOUNTS)[number];
export const AMOUNT_STAGES: Record<RecordAmount, readonly Stage[]> = { rcpts: ['data'], bytes: ['data'] };

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
  { base: 'connections', type: 'cidr', event: 'connections' },
  { base: 'receptions', type: 'cidr', event: 'receptions' },
  { base: 'rejections', type: 'cidr', event: 'rejections' },
  { base: 'connections6', type: 'cidr_ipv6', store_prefix: 64, event: 'connections' },
  { base: 'receptions6', type: 'cidr_ipv6', store_prefix: 64, event: 'receptions' },
  { base: 'rejections6', type: 'cidr_ipv6', store_prefix: 64, event: 'rejections' },
] as const satisfies ReadonlyArray<{ base: string; type: SeriesType; store_prefix?: number; event: MonitorEvent }>;

/** What a monitor counts: connections (connect), receptions (accepted messages), rejections (refusals). */
export type MonitorEvent = 'connections' | 'receptions' | 'rejections';

export const DEFAULTS = {
  listen: '127.0.0.1:2525',
  max_clients: 2000,
  max_message_size: 25 * 1024 * 1024,
  max_recipients: 100,
  max_transactions: 100,
  max_errors: 20,
  max_junk_commands: 100,
  idle_timeout: 300,
  max_transaction_time: 600,
  proxy_header_wait: 0.25,
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
  /** `ban: { for, … }` without factor / max: doubles, up to a day (or `for`, when longer). */
  ban_factor: 2,
  ban_max: 86_400,
  alert_min_interval: 300,
  alert_timeout: 5,
  alert_retries: 3,
  journal_retention: 7 * 86_400,
} as const;
