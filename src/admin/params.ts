/** The admin API's request parameters: window ranges, bounded integers, series keys. Each refusal is a 400. */
import { normalizeCidr } from '../config/values.js';
import type { AuditSeries } from '../series/index.js';
import { bad } from './http.js';

const MAX_STRING_KEY = 1024;

/** Parses "0-3" / "2" into an inclusive window range within the series. */
export function parseWindows(text: string | null, series: Pick<AuditSeries, 'name' | 'windows'>): [number, number] {
  if (text === null || text === '') return [0, series.windows - 1];
  const m = /^\s*(\d{1,6})\s*(?:-\s*(\d{1,6})\s*)?$/.exec(text);
  if (!m) throw bad(`windows "${text}" is not a window range such as "0-3" or "0"`, 'AG_WINDOW_RANGE');
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start > end) throw bad(`windows "${text}": the start (${start}) is after the end (${end})`, 'AG_WINDOW_RANGE');
  if (end >= series.windows) {
    throw bad(`windows "${text}": series "${series.name}" has windows 0-${series.windows - 1}`, 'AG_WINDOW_RANGE');
  }
  return [start, end];
}

/** An integer query parameter in min..max; `dflt` when absent or empty. */
export function parseIntParam(text: string | null, name: string, min: number, max: number, dflt: number | undefined): number | undefined {
  if (text === null || text === '') return dflt;
  if (!/^\d{1,7}$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
    throw bad(`${name} "${text}" must be an integer from ${min} to ${max}`);
  }
  return Number(text);
}

/** Validates a key for the series (the store would refuse it too, but with less context). */
export function checkKey(series: AuditSeries, key: string | null | undefined, opts: { address?: boolean } = {}): string {
  if (key === null || key === undefined || key === '') throw bad(`a key is required (e.g. key=192.0.2.0/24)`, 'AG_KEY_INVALID');
  if (series.type === 'string') {
    if (key.length > MAX_STRING_KEY) throw bad(`key is longer than ${MAX_STRING_KEY} characters`, 'AG_KEY_INVALID');
    return key;
  }
  const n = normalizeCidr(key);
  if (n === null) throw bad(`"${key}" is not an IP address or CIDR prefix (e.g. 192.0.2.7, 192.0.2.0/24, 2001:db8::/48)`, 'AG_KEY_INVALID');
  const v6 = n.includes(':');
  if (v6 !== (series.type === 'cidr_ipv6')) {
    throw bad(`series "${series.name}" (${series.type}) holds ${series.type === 'cidr' ? 'IPv4' : 'IPv6'} addresses, not "${key}"`, 'AG_KEY_INVALID');
  }
  if (opts.address && key.includes('/') && !n.endsWith(v6 ? '/128' : '/32')) {
    // cidr_ipv6 with store_prefix takes prefixes at least that long; the series checks that.
    if (!(v6 && series.options.store_prefix !== undefined)) throw bad(`add takes an address, not the prefix "${key}"`, 'AG_KEY_INVALID');
  }
  return key.trim();
}
