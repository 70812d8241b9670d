/**
 * Value parsers for the config (pure): host:port, CIDR, key templates, durations and sizes,
 * monitors, relay and Redis URLs, window ranges, replies. Each throws a ValueProblem with an
 * operator-facing message; schema.ts turns it into a problem at the key that held the value.
 */
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { parseDuration, parseSize } from './duration.js';
import type { HostPort, MonitorConfig, RelayUrl } from './types.js';
import { KEY_PLACEHOLDERS, RECORD_AMOUNTS, type KeyPlaceholder, type RecordAmount } from './vocabulary.js';

export class ValueProblem extends Error {}

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
export function parseAdminHost(v: unknown): string {
  if (typeof v !== 'string') throw new ValueProblem(`expected a host name such as "gateway.example.net", got ${describeValue(v)}`);
  const name = v.trim().toLowerCase().replace(/\.$/, '');
  if (isIPv4(name) || isIPv6(name.replace(/^\[(.*)\]$/, '$1'))) {
    throw new ValueProblem(`${describeValue(v)} is an IP address: IP addresses are always accepted in Host, list only names here`);
  }
  if (/:\d*$/.test(name)) throw new ValueProblem(`${describeValue(v)}: list the name without a port (any port is accepted)`);
  if (!HOSTNAME_RE.test(name)) throw new ValueProblem(`${describeValue(v)} is not a host name such as "gateway.example.net" (no wildcards)`);
  return name;
}

/** A TLS server name (SNI, and the name a certificate is checked for): a host name, not an address. */
export function parseServerName(v: unknown): string {
  if (typeof v !== 'string') throw new ValueProblem(`expected a host name such as "mx.example.net", got ${describeValue(v)}`);
  const name = v.trim().toLowerCase().replace(/\.$/, '');
  if (isIPv4(name) || isIPv6(name)) throw new ValueProblem(`${describeValue(v)} is an IP address: a server name is a host name (an address is checked as the URL's host)`);
  if (!HOSTNAME_RE.test(name)) throw new ValueProblem(`${describeValue(v)} is not a host name such as "mx.example.net"`);
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

export function parseCidr(v: unknown): string {
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

export function parseTemplate(v: unknown): string {
  if (typeof v !== 'string' || v === '') {
    throw new ValueProblem(`expected a key template such as "{mail_from_domain}", got ${describeValue(v)}`);
  }
  templatePlaceholders(v);
  return v;
}

/** A record rule's `count`: a non-zero integer (within ±2^31), or what the message says (rcpts, bytes). */
export function parseAmount(v: unknown): number | RecordAmount {
  if ((RECORD_AMOUNTS as readonly unknown[]).includes(v)) return v as RecordAmount;
  if (typeof v === 'number' && Number.isInteger(v) && v !== 0 && Math.abs(v) < 2 ** 31) return v;
  throw new ValueProblem(`count is a non-zero integer (up to 2147483647 either way), ${RECORD_AMOUNTS.map((a) => `"${a}"`).join(' or ')}; got ${describeValue(v)}`);
}

export function parseDurationValue(v: unknown, positive: boolean): number {
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

export function parseSizeValue(v: unknown): number {
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

/** One relay URL: `smtp://host:port`, `smtps://host:port` (implicit TLS) or `dir:PATH`. */
export function parseRelayUrl(v: unknown, baseDir: string): RelayUrl {
  const help = 'expected "smtp://host:port", "smtps://host:port" (IPv6 host in brackets) or "dir:PATH"';
  if (typeof v !== 'string') throw new ValueProblem(`${help}, got ${describeValue(v)}`);
  if (v.startsWith('dir:')) {
    const p = v.slice(4).trim();
    if (p === '') throw new ValueProblem(`"dir:" needs a directory, e.g. "dir:./var/mail"`);
    const dir = path.resolve(baseDir, p);
    return { url: `dir:${dir}`, kind: 'dir', dir };
  }
  const m = /^(smtps?):\/\/(.*?)\/?$/.exec(v.trim());
  if (!m) throw new ValueProblem(`${help}, got ${describeValue(v)}`);
  let hp: HostPort;
  try {
    hp = parseHostPort(m[2]!);
  } catch (e) {
    throw new ValueProblem(`relay ${describeValue(v)}: ${(e as Error).message}`);
  }
  if (hp.port === 0) throw new ValueProblem(`relay ${describeValue(v)}: port 0 is not a backend port`);
  const scheme = m[1]!;
  return { url: `${scheme}://${formatHostPort(hp)}`, kind: 'smtp', host: hp.host, port: hp.port, implicit_tls: scheme === 'smtps' };
}

export function parseRedisUrl(v: unknown): string {
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
export function parseRedisSetting(v: unknown): string | string[] {
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

export function parseWindowRange(v: unknown): [number, number] {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
  if (!Array.isArray(v) || v.length !== 2 || !ok(v[0]) || !ok(v[1])) {
    throw new ValueProblem(`expected a window range [start, end] such as [0, 3], got ${Array.isArray(v) ? JSON.stringify(v) : describeValue(v)}`);
  }
  if (v[0] > v[1]) throw new ValueProblem(`window range [${v[0]}, ${v[1]}] starts after it ends`);
  return [v[0], v[1]];
}

export function parseReply(v: unknown): string {
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

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
