/**
 * The admin API's ban endpoints (routes in server.ts):
 *
 *   GET    /bans?limit=1000                     the active bans, soonest expiry first
 *   POST   /bans  {"prefix": "198.51.100.7", "for": "1h"}   ban by hand (409 AG_BAN over a protected network)
 *   DELETE /bans?prefix=192.0.2.0/24            lift (404 AG_BAN_NOT_FOUND when that prefix is not banned)
 *
 * A lift takes effect on every node of a cluster (the shared ban list tells them).
 */
import type http from 'node:http';
import { parseDuration } from '../config/duration.js';
import type { Ban } from '../bans/ban-list.js';
import type { BanStats } from '../bans/ban-service.js';
import { AdminHttpError, bad, readJsonBody } from './http.js';
import type { BanJson } from './answers.js';
import { parseIntParam } from './params.js';

/** What the admin API and /metrics see of the bans. */
export interface BansAdmin {
  list(): Ban[];
  /** A multi-process gateway answers once every worker applied the change. */
  add(prefix: string, seconds: number): Ban | Promise<Ban>;
  lift(prefix: string): Ban | Promise<Ban>;
  readonly bans: { stats(): BanStats };
}

const MAX_LIST = 100_000;

/** The gateway's bans; a 404 where there are none. */
export function bansOf(gateway: { controls?: BansAdmin }): BansAdmin {
  if (gateway.controls) return gateway.controls;
  throw new AdminHttpError(404, 'AG_BAN_NOT_FOUND', 'this gateway keeps no ban list');
}

/** A ban as the API shows it: times as ISO text, and the seconds it has left. */
export function banJson(b: Ban, now: number): BanJson {
  return {
    prefix: b.prefix,
    policy: b.policy,
    since: new Date(b.since).toISOString(),
    until: new Date(b.until).toISOString(),
    seconds_left: Math.max(0, Math.ceil((b.until - now) / 1000)),
    level: b.level,
    ...(b.node !== undefined ? { node: b.node } : {}),
  };
}

export function listBans(bans: BansAdmin, query: URLSearchParams, now: number): unknown {
  const limit = parseIntParam(query.get('limit'), 'limit', 1, MAX_LIST, 1000)!;
  const all = bans.list();
  return { total: all.length, limit, bans: all.slice(0, limit).map((b) => banJson(b, now)) };
}

export async function addBan(bans: BansAdmin, req: http.IncomingMessage, res: http.ServerResponse, now: number): Promise<unknown> {
  const body = await readJsonBody(req, res);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object {"prefix": "198.51.100.7", "for": "1h"}', 'AG_ADMIN_BAD_JSON');
  const o = body as Record<string, unknown>;
  if (typeof o.prefix !== 'string') throw bad('"prefix" must be an address or CIDR prefix, e.g. "198.51.100.7" or "192.0.2.0/24"', 'AG_KEY_INVALID');
  const seconds = banDuration(o.for);
  return { ban: banJson(await bans.add(o.prefix, seconds), now) };
}

export async function liftBan(bans: BansAdmin, query: URLSearchParams, now: number): Promise<unknown> {
  const prefix = query.get('prefix');
  if (prefix === null || prefix === '') throw bad('a prefix is required (e.g. prefix=192.0.2.0/24)', 'AG_KEY_INVALID');
  return { lifted: banJson(await bans.lift(prefix), now) };
}

/** A ban duration from JSON: seconds, or text such as "1h" or "30m"; more than 0. */
function banDuration(v: unknown): number {
  if (typeof v !== 'number' && typeof v !== 'string') throw bad(`"for" must be a duration such as "1h", "30m" or 3600 (seconds), got ${JSON.stringify(v) ?? 'nothing'}`);
  let s: number;
  try {
    s = parseDuration(v);
  } catch (e) {
    throw bad(`"for": ${(e as Error).message}`);
  }
  if (!(s > 0)) throw bad(`"for" must be more than 0, got ${JSON.stringify(v)}`);
  return s;
}
