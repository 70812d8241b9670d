/**
 * Loading the YAML config: parse with line numbers, validate with the schema, report every
 * problem as `file:line:col key.path: message` in one ConfigError, freeze the result.
 *
 *   loadConfig('config/auditgate.yaml')          → Config (deep-frozen)
 *   parseConfigText(text, 'config/x.yaml')       → the same from text (paths resolve against
 *                                                   the directory of the file name given)
 *   formatConfig(config)                         → YAML of the effective config (check-config)
 */
import fs from 'node:fs';
import { Document, LineCounter, isAlias, isMap, isNode, isScalar, isSeq, parseDocument, visit } from 'yaml';
import { ConfigError } from '../errors.js';
import { formatDuration, formatSize } from './duration.js';
import { parseConfigObject } from './parse.js';
import type { Config, PathProblem, RelayConfig } from './types.js';
import { formatHostPort } from './values.js';
import { configWarnings } from './warnings.js';

interface Located {
  line: number;
  col: number;
  text: string;
}

/** Reads and validates a config file. Throws ConfigError listing every problem. */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(file, [`${file}: cannot read the configuration: ${err.code ?? err.message}`]);
  }
  return parseConfigText(text, file);
}

/**
 * Validates config text as if it were the content of `file` (used in messages, and relative
 * paths in the config resolve against its directory). Throws ConfigError listing every problem.
 */
export function parseConfigText(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, keepSourceTokens: true, uniqueKeys: true });
  const problems: Located[] = [];
  const at = (offset: number | undefined, msg: string) => {
    const { line, col } = offset === undefined ? { line: 1, col: 1 } : lineCounter.linePos(offset);
    problems.push({ line, col, text: `${file}:${line}:${col} ${msg}` });
  };

  for (const e of [...doc.errors, ...doc.warnings]) {
    const message = e.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
    at(e.pos[0], `YAML: ${message}`);
  }

  let config: Config | undefined;
  if (doc.errors.length === 0) {
    let raw: unknown;
    let ok = true;
    try {
      raw = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      ok = false;
      at(undefined, `YAML: ${(e as Error).message}`);
    }
    if (ok) {
      const result = parseConfigObject(raw, file);
      const where = (p: PathProblem): string => `${formatPath(p.path)}${p.path.length > 0 ? ': ' : ''}${p.message}`;
      for (const p of result.problems) at(locate(doc, p.path), where(p));
      config = result.config;
      if (config) {
        config.warnings = configWarnings(config).map((w) => {
          const { line, col } = lineCounter.linePos(locate(doc, w.path) ?? 0);
          return `${file}:${line}:${col} ${where(w)}`;
        });
      }
    }
  }

  if (problems.length > 0 || !config) {
    const sorted = problems.map((p, i) => ({ ...p, i })).sort((a, b) => a.line - b.line || a.col - b.col || a.i - b.i);
    throw new ConfigError(file, sorted.map((p) => p.text));
  }
  return deepFreeze(config);
}

/** `policies[2].mask`, `series["connections:300,6"].windows`. */
export function formatPath(p: ReadonlyArray<string | number>): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function keyText(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

/**
 * Source offset for a key path: the key itself for a map entry, the item for a list entry. When
 * the path goes further than the document (a missing key), the enclosing node that exists.
 */
export function locate(doc: Document, p: PathProblem['path']): number | undefined {
  let node: unknown = doc.contents;
  let offset = isNode(node) ? node.range?.[0] : undefined;
  for (const seg of p) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((it) => keyText(it.key) === String(seg));
      if (!pair) return isNode(node) ? (node.range?.[0] ?? offset) : offset;
      offset = isNode(pair.key) ? (pair.key.range?.[0] ?? offset) : offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!item) return node.range?.[0] ?? offset;
      offset = isNode(item) ? (item.range?.[0] ?? offset) : offset;
      node = item;
    } else {
      return offset;
    }
  }
  return offset;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = 'REDACTED';
    return u.toString();
  } catch {
    return url;
  }
}

export interface FormatOptions {
  /** Print the admin token and Redis passwords instead of REDACTED. Default false. */
  showSecrets?: boolean;
}

/** The relay section in the input shape: one URL or the list, TLS files by path. */
function formatRelay(relay: RelayConfig): Record<string, unknown> {
  const settings = { timeout: formatDuration(relay.timeout), pool_size: relay.pool_size, chunking: relay.chunking };
  if (relay.kind === 'dir') return { url: relay.url, ...settings };
  const urls = relay.backends.map((b) => b.url);
  const { mode, ca, servername, cert, key } = relay.tls;
  const tls = { mode, ca: ca?.path, servername, cert: cert?.path, key: key?.path };
  return { url: urls.length === 1 ? urls[0] : urls, strategy: relay.strategy, tls, ...settings };
}

/**
 * YAML text of the effective configuration in the input shape (defaults filled in, durations
 * and sizes in units, paths absolute), so it can itself be loaded. Secrets are redacted unless
 * `showSecrets`.
 */
export function formatConfig(config: Config, options: FormatOptions = {}): string {
  const secret = (s: string) => (options.showSecrets ? s : 'REDACTED');
  const url = (s: string) => (options.showSecrets ? s : redactUrl(s));
  const { server, relay, store, admin } = config;
  const out = {
    server: {
      hostname: server.hostname,
      listen: server.listen.map(formatHostPort),
      proxy_protocol: server.proxy_protocol,
      xclient: server.xclient,
      tls: server.tls,
      max_clients: server.max_clients,
      max_message_size: formatSize(server.max_message_size),
      max_recipients: server.max_recipients,
      max_transactions: server.max_transactions,
      max_errors: server.max_errors,
      max_junk_commands: server.max_junk_commands,
      idle_timeout: formatDuration(server.idle_timeout),
      max_transaction_time: formatDuration(server.max_transaction_time),
      proxy_header_wait: formatDuration(server.proxy_header_wait),
      greet_delay: formatDuration(server.greet_delay),
      max_line_length: server.max_line_length,
      banner: server.banner,
    },
    relay: formatRelay(relay),
    state_dir: config.state_dir,
    log_dir: config.log_dir,
    persist_interval: formatDuration(config.persist_interval),
    log_retention: formatDuration(config.log_retention),
    monitors: config.monitors.map((m) => m.text),
    store: {
      redis: store.redis === undefined ? undefined : Array.isArray(store.redis) ? store.redis.map(url) : url(store.redis),
      on_error: store.on_error,
      max_delay: formatDuration(store.max_delay),
      max_pending: store.max_pending,
    },
    admin: {
      enabled: admin.listen ? undefined : false,
      listen: admin.listen ? formatHostPort(admin.listen) : undefined,
      token: admin.token === undefined ? undefined : secret(admin.token),
      hosts: admin.hosts,
    },
    log: { level: config.log.level },
    journal: config.journal ? { dir: config.journal.dir, retention: formatDuration(config.journal.retention) } : undefined,
    series: Object.fromEntries(
      Object.values(config.series).map(({ name, type, interval, ...rest }) => [name, { type, interval: formatDuration(interval), ...rest }]),
    ),
    record: config.record,
    policies: config.policies.map((p) => ({
      ...p,
      delay: p.delay === undefined ? undefined : formatDuration(p.delay),
      ban: p.ban === undefined ? undefined : { for: formatDuration(p.ban.for), factor: p.ban.factor, max: formatDuration(p.ban.max) },
    })),
    protected: config.protected,
    alerts: config.alerts.map((a) => ({
      ...a,
      min_interval: formatDuration(a.min_interval),
      timeout: formatDuration(a.timeout),
      headers: Object.fromEntries(Object.entries(a.headers).map(([k, v]) => [k, secret(v)])),
    })),
  };
  const doc = new Document(out);
  // Short lists of scalars read best inline: listen: ["0.0.0.0:2525"], windows: [0, 3].
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((it) => isScalar(it))) node.flow = true;
    },
  });
  return `# effective configuration of ${config.file}\n# durations and sizes in units, paths absolute\n${doc.toString({ lineWidth: 0 })}`;
}
