/**
 * The CLI side of the admin API: where the gateway's admin listener is, and one JSON request
 * against it. Errors carry the server's `{error, code}` so the CLI can print them as they are.
 */
import { loadConfig } from '../config/load.js';
import type { HostPort } from '../config/types.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8025';

export class AdminClientError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when the gateway could not be reached. */
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A URL for a bound address: wildcard binds are reached over loopback. */
export function adminUrlFor(hp: HostPort): string {
  let host = hp.host;
  if (host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::') host = '::1';
  return host.includes(':') ? `http://[${host}]:${hp.port}` : `http://${host}:${hp.port}`;
}

export interface AdminTarget {
  url: string;
  token?: string;
}

/**
 * `--admin URL` wins; else the admin.listen of `--config FILE`; else 127.0.0.1:8025.
 * The token: `--token`, else $AUDITGATE_TOKEN, else the config's admin.token.
 */
export function resolveTarget(opts: { admin?: string; config?: string; token?: string; env?: NodeJS.ProcessEnv }): AdminTarget {
  const env = opts.env ?? process.env;
  let url = opts.admin;
  let token = opts.token ?? (env.AUDITGATE_TOKEN || undefined);
  if (opts.config !== undefined) {
    const config = loadConfig(opts.config);
    if (url === undefined) {
      if (!config.admin.listen) throw new AdminClientError(`${opts.config}: the admin listener is disabled (admin.enabled: false)`, 0);
      url = adminUrlFor(config.admin.listen);
    }
    token ??= config.admin.token;
  }
  url ??= DEFAULT_ADMIN_URL;
  if (!/^https?:\/\//i.test(url)) url = `http://${url}`;
  try {
    new URL(url);
  } catch {
    throw new AdminClientError(`--admin "${url}" is not a URL such as http://127.0.0.1:8025`, 0, 'usage');
  }
  const out: AdminTarget = { url: url.replace(/\/+$/, '') };
  if (token !== undefined) out.token = token;
  return out;
}

/** One request; resolves with the parsed JSON of a 2xx, rejects with AdminClientError otherwise. */
export async function adminRequest(target: AdminTarget, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  const init: RequestInit = { method, headers, signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(`${target.url}${path}`, init);
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
    throw new AdminClientError(`cannot reach the admin listener at ${target.url}: ${cause}`, 0);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = json as { error?: unknown; code?: unknown } | undefined;
    const message = typeof e?.error === 'string' ? e.error : `HTTP ${res.status} ${res.statusText}`;
    throw new AdminClientError(message, res.status, typeof e?.code === 'string' ? e.code : undefined);
  }
  if (json === undefined) throw new AdminClientError(`the admin listener at ${target.url} answered ${path} with something that is not JSON`, res.status);
  return json;
}
