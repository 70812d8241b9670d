/**
 * Value parsers for the operator controls (SPEC §6): alert URLs and alert headers. Pure; each
 * throws a ValueProblem with an operator-facing message (schema.ts reports it at its key).
 */
import { ValueProblem, describeValue, isPlainObject } from './values.js';

/** An alert receiver: an absolute http:// or https:// URL with a host. */
export function parseAlertUrl(v: unknown): string {
  const help = 'expected an http:// or https:// URL such as "http://127.0.0.1:9093/hook"';
  if (typeof v !== 'string') throw new ValueProblem(`${help}, got ${describeValue(v)}`);
  let u: URL;
  try {
    u = new URL(v.trim());
  } catch {
    throw new ValueProblem(`${help}, got ${describeValue(v)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ValueProblem(`alerts are sent with HTTP POST: the URL must start with http:// or https://, got ${describeValue(v)}`);
  }
  if (u.hostname === '') throw new ValueProblem(`${help}, got ${describeValue(v)} (no host)`);
  return u.toString();
}

/** Header names as RFC 9110 tokens. */
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
/** Set by the sender itself: a config value would contradict the request. */
const RESERVED = new Set(['content-type', 'content-length', 'host', 'transfer-encoding', 'connection']);

/** Extra alert request headers (`{ Authorization: "Bearer …" }`): names lower-cased, values one line. */
export function parseAlertHeaders(v: unknown): Record<string, string> {
  if (!isPlainObject(v)) throw new ValueProblem(`expected a map of header names to values such as { Authorization: "Bearer s3cret" }, got ${describeValue(v)}`);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(v)) {
    if (!TOKEN_RE.test(name)) throw new ValueProblem(`"${name}" is not an HTTP header name`);
    const lower = name.toLowerCase();
    if (RESERVED.has(lower)) throw new ValueProblem(`header "${name}" is set by the alert sender itself`);
    if (typeof value !== 'string' && typeof value !== 'number') throw new ValueProblem(`header "${name}": expected text, got ${describeValue(value)}`);
    const text = String(value);
    if (/[\r\n\0]/.test(text)) throw new ValueProblem(`header "${name}": a header value must be a single line`);
    out[lower] = text;
  }
  return out;
}
