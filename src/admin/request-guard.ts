/**
 * Who may talk to the admin listener, judged from request headers alone (pure functions).
 *
 * The admin API has no token on loopback, so the browser on the gateway host is the threat: a
 * page from any site can send "simple" requests to http://127.0.0.1:8025 (a text/plain POST, a
 * form), and after a DNS rebind a page can read every answer under its own name. Three checks
 * close that, in this order, before routing:
 *
 *   1. Host (421): an IP literal (rebinding needs a name), `localhost` when the listener is on
 *      loopback, the listener's own configured name, or a name listed in `admin.hosts`.
 *      No Host header at all (HTTP/1.0 tools) is accepted.
 *   2. Cross-site (403): `Sec-Fetch-Site` other than `same-origin` / `none`, or an `Origin`
 *      that is not `http://` + the request's Host (`Origin: null` included). Requests with
 *      neither header (curl, the CLI, Prometheus) are accepted.
 *   3. Body type (415): a request that carries a body must say `Content-Type: application/json`
 *      (parameters allowed); text/plain and form bodies, the ones a page can send cross-site
 *      without a preflight, are refused before the body is read.
 */
import net from 'node:net';
import type http from 'node:http';
import ipaddr from 'ipaddr.js';
import type { ErrorCode } from '../errors.js';

/** Why a request is refused: status, stable code, operator-facing message. */
export interface Refusal {
  status: number;
  code: Extract<ErrorCode, 'AG_ADMIN_FORBIDDEN_HOST' | 'AG_ADMIN_CROSS_SITE' | 'AG_ADMIN_CONTENT_TYPE'>;
  message: string;
}

export interface HostPolicy {
  /** The host the listener is bound to, as configured (an IP, or a name such as localhost). */
  listenHost: string;
  /** `admin.hosts`: extra names accepted in Host (lower case, no trailing dot). */
  hosts: readonly string[];
}

export interface ParsedHost {
  /** Lower case; IPv6 without brackets; a name without its trailing dot. */
  host: string;
  port?: number;
  ip: boolean;
}

const NAME_RE = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** Parses a Host header value: `name[:port]`, `a.b.c.d[:port]`, `[v6][:port]`; null if garbage. */
export function parseHostHeader(value: string): ParsedHost | null {
  const text = value.trim().toLowerCase();
  const m = /^(\[[^\]]*\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(text);
  if (!m) return null;
  let host = m[1]!;
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && port > 65535) return null;
  let ip: boolean;
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    if (!/^[0-9a-f:.]+$/.test(host) || !net.isIPv6(host)) return null; // no zone ids
    ip = true;
  } else if (/^[\d.]+$/.test(host)) {
    if (!net.isIPv4(host)) return null;
    ip = true;
  } else {
    if (host.endsWith('.')) host = host.slice(0, -1);
    if (!NAME_RE.test(host)) return null;
    ip = false;
  }
  return port === undefined ? { host, ip } : { host, port, ip };
}

function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  try {
    return ipaddr.process(host).range() === 'loopback';
  } catch {
    return false;
  }
}

/** Host check: null when the Host header names this listener, else a 421 refusal. */
export function checkHost(value: string | undefined, policy: HostPolicy): Refusal | null {
  if (value === undefined) return null;
  const parsed = parseHostHeader(value);
  if (parsed?.ip) return null;
  if (parsed) {
    const name = parsed.host;
    if (name === 'localhost' && isLoopbackHost(policy.listenHost)) return null;
    if (name === policy.listenHost.toLowerCase().replace(/\.$/, '')) return null;
    if (policy.hosts.includes(name)) return null;
  }
  return {
    status: 421,
    code: 'AG_ADMIN_FORBIDDEN_HOST',
    message: `Host ${JSON.stringify(value.slice(0, 200))} is not a name of this admin listener: use its IP address${
      isLoopbackHost(policy.listenHost) ? ' or localhost' : ''
    }, or list the name in admin.hosts`,
  };
}

/** `http://` + Host as an origin (lower case, default port dropped), or null. */
function originOfHost(host: string): string | null {
  try {
    return new URL(`http://${host}`).origin;
  } catch {
    return null;
  }
}

export interface CrossSiteHeaders {
  origin?: string | undefined;
  secFetchSite?: string | undefined;
  host?: string | undefined;
}

/** Cross-site check: null for same-origin, typed-URL and non-browser requests, else a 403. */
export function checkCrossSite(h: CrossSiteHeaders): Refusal | null {
  const refuse = (why: string): Refusal => ({
    status: 403,
    code: 'AG_ADMIN_CROSS_SITE',
    message: `${why}: the admin API answers only its own pages and non-browser clients`,
  });
  if (h.secFetchSite !== undefined) {
    const site = h.secFetchSite.trim().toLowerCase();
    if (site !== 'same-origin' && site !== 'none') return refuse(`Sec-Fetch-Site ${JSON.stringify(h.secFetchSite.slice(0, 40))}`);
  }
  if (h.origin !== undefined) {
    const shown = `Origin ${JSON.stringify(h.origin.slice(0, 200))}`;
    if (h.origin.trim().toLowerCase() === 'null') return refuse(shown);
    const own = h.host === undefined ? null : originOfHost(h.host);
    let origin: string | null = null;
    try {
      const u = new URL(h.origin.trim());
      // An Origin header is a bare serialized origin; anything with a path or user is not one.
      if (u.origin === h.origin.trim().toLowerCase()) origin = u.origin;
    } catch {
      origin = null;
    }
    if (own === null || origin !== own) return refuse(`${shown} is not this listener (${own ?? 'no Host header'})`);
  }
  return null;
}

/** True when the request carries a body (Content-Length above 0, or any Transfer-Encoding). */
export function hasBody(headers: http.IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const cl = headers['content-length'];
  return cl !== undefined && Number(cl) !== 0;
}

/** Body type check: a body must be application/json (parameters allowed), else a 415. */
export function checkContentType(headers: http.IncomingHttpHeaders): Refusal | null {
  if (!hasBody(headers)) return null;
  const ct = headers['content-type'];
  const type = (ct ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return null;
  return {
    status: 415,
    code: 'AG_ADMIN_CONTENT_TYPE',
    message: `a request body must be sent with Content-Type: application/json (got ${ct === undefined ? 'no Content-Type' : JSON.stringify(ct.slice(0, 100))})`,
  };
}

/** All three checks in order; null when the request may proceed. */
export function guardRequest(headers: http.IncomingHttpHeaders, policy: HostPolicy): Refusal | null {
  const secFetchSite = headers['sec-fetch-site'];
  return (
    checkHost(headers.host, policy) ??
    checkCrossSite({ origin: headers.origin, secFetchSite: Array.isArray(secFetchSite) ? secFetchSite.join(', ') : secFetchSite, host: headers.host }) ??
    checkContentType(headers)
  );
}
