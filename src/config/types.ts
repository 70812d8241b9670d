/**
 * The normalized configuration: what parsing the YAML produces (durations in seconds, sizes in
 * bytes, paths absolute, CIDRs normalized), deep-frozen by the loader. Keys keep their YAML
 * names; runtime options (camelCase with units) are made from these where parts are built.
 */
import type { Replicate, SeriesType } from '../series/types.js';
import type { Action, LOG_LEVELS, POLICY_MODES, RecordAmount, RelayStrategy, RelayTlsMode, Stage, StoreOnError } from './vocabulary.js';

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
   * Seconds a transaction may take, from the first byte of a command outside a transaction (its
   * MAIL) to the final reply to its message; past it the client gets 421 and the connection
   * closes, however steadily it trickles bytes.
   */
  max_transaction_time: number;
  /**
   * Seconds a peer that is not a trusted PROXY peer waits for its greeting when
   * `proxy_protocol` lists any peers, so that a PROXY header it sends at once is refused
   * before a 220 (0: greet at once).
   */
  proxy_header_wait: number;
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

/** Where accepted mail goes: backend MTAs (`smtp://`, `smtps://`), or a directory of .eml files (`dir:`). */
export type RelayConfig = SmtpRelayConfig | DirRelayConfig;

/** What one entry of `relay.url` gives. */
export type RelayUrl = ({ kind: 'smtp' } & RelayBackendConfig) | Pick<DirRelayConfig, 'url' | 'kind' | 'dir'>;

interface RelaySettings {
  /** Seconds. */
  timeout: number;
  pool_size: number;
  /** smtp only: send messages with BDAT (RFC 3030) when the backend offers CHUNKING. */
  chunking: boolean;
}

/** One backend MTA. */
export interface RelayBackendConfig {
  /** Normalized: `smtp://host:port` or `smtps://host:port` (IPv6 host in brackets). */
  url: string;
  /** An IPv6 host without brackets. */
  host: string;
  port: number;
  /** `smtps://`: TLS from the first byte (RFC 8314), not STARTTLS. */
  implicit_tls: boolean;
}

/** A PEM file read at load: its absolute path and its text. */
export interface PemFile {
  path: string;
  pem: string;
}

/** TLS to the backends: STARTTLS on `smtp://` backends, and the certificate check of every TLS backend. */
export interface RelayTlsConfig {
  mode: RelayTlsMode;
  /** CA certificates the backend's certificate must chain to (mode required); default: the system's. */
  ca?: PemFile;
  /** The name sent (SNI) and checked in the backend's certificate; default: the URL's host. */
  servername?: string;
  /** A client certificate and its key, offered to backends that ask for one. */
  cert?: PemFile;
  key?: PemFile;
}

export interface SmtpRelayConfig extends RelaySettings {
  kind: 'smtp';
  /** In the order listed (at least one). */
  backends: RelayBackendConfig[];
  strategy: RelayStrategy;
  tls: RelayTlsConfig;
}

export interface DirRelayConfig extends RelaySettings {
  kind: 'dir';
  /** Normalized: `dir:/absolute/path`. */
  url: string;
  /** Absolute. */
  dir: string;
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
  on_error: StoreOnError;
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

/** `journal:` every stage event as one JSONL line, one file per UTC day (replay reads them). */
export interface JournalConfig {
  /** Absolute. */
  dir: string;
  /** Seconds: day files whose whole day is older than this are deleted. */
  retention: number;
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
  /** Counts distinct values per key and window (record rules give the `value`), not events. */
  distinct: boolean;
}

export interface RecordRule {
  on: Stage;
  series: string[];
  key?: string;
  /**
   * What each event adds: a fixed non-zero integer, `rcpts` (the message's accepted recipients)
   * or `bytes` (its size). Absent: 1. Distinct series take a `value` instead.
   */
  count?: number | RecordAmount;
  /** Distinct series: the value whose distinct occurrences are counted (a template, e.g. "{rcpt}"). */
  value?: string;
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
  /** Ban the client's prefix (the policy's mask) when the policy fires (enforcing). */
  ban?: BanConfig;
}

/**
 * A policy's ban: `for` seconds, and a prefix banned again while its last ban is younger than
 * `max` gets `for × factor^n` (n = the bans before it in that run), capped at `max`.
 * `ban: 10m` is `{ for: 600, factor: 1, max: 600 }`.
 */
export interface BanConfig {
  /** Seconds. */
  for: number;
  factor: number;
  /** Seconds. */
  max: number;
}

/** One `alerts:` entry: a JSON POST to `url` when a policy fires for a key (once per min_interval). */
export interface AlertConfig {
  name: string;
  /** http:// or https:// */
  url: string;
  /** Only these policies (all when absent). */
  policies?: string[];
  /** Seconds. */
  min_interval: number;
  /** Extra request headers (an Authorization token), names lower-cased. */
  headers: Record<string, string>;
  /** Seconds per attempt. */
  timeout: number;
  /** Attempts after the first, with exponential backoff. */
  retries: number;
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
  /** Undefined: no journal. */
  journal?: JournalConfig;
  series: Record<string, SeriesConfig>;
  record: RecordRule[];
  policies: PolicyConfig[];
  /** Normalized CIDR text: never refused, tarpitted or banned (still counted). */
  protected: string[];
  alerts: AlertConfig[];
}

/** One problem, located by its key path in the raw document. */
export interface PathProblem {
  path: Array<string | number>;
  message: string;
}
