/**
 * Redis connections that never hang the caller: every command has a timeout, nothing is
 * queued while disconnected (commands fail at once), in-flight commands fail when the
 * connection drops, and reconnects go on in the background for ever (capped backoff).
 *
 * One URL is a standalone Redis; a list of URLs are seed nodes of a Redis Cluster.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { ADD_LUA, COUNT_LUA, LEAVES_LUA, REMOVE_LUA } from './redis-scripts.js';
import { ADD_DISTINCT_LUA, COUNT_DISTINCT_LUA, REMOVE_DISTINCT_LUA } from './redis-distinct-scripts.js';

export type RedisClient = Redis | Cluster;

export interface ConnectOptions {
  /** Per command. Default 500 ms. */
  commandTimeoutMs?: number;
  /** TCP connect. Default 2000 ms. */
  connectTimeoutMs?: number;
  logger?: Logger;
}

/** The scripts as commands: numKeys first, then keys, then arguments. */
export interface ScriptCommands {
  /** [1 applied | 0 duplicate, adds dropped because a window's leaf hash was full] */
  agAdd(numKeys: number, ...args: Array<string | number>): Promise<[number, number]>;
  /** [lastSeq, [sum, scanWindows] per query] */
  agCount(numKeys: number, ...args: Array<string | number>): Promise<[number, ...Array<[number, string]>]>;
  /** [lastSeq, flat field/value list per leaf hash] */
  agLeaves(numKeys: number, ...args: Array<string | number>): Promise<[number, ...string[][]]>;
  agRemove(numKeys: number, ...args: Array<string | number>): Promise<string[]>;
  /** Distinct series (redis-distinct-scripts.ts): as agAdd. */
  agAddDistinct(numKeys: number, ...args: Array<string | number>): Promise<[number, number]>;
  /** One count per query; -1 where a writer did not keep the mask. */
  agCountDistinct(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
  /** The fields removed. */
  agRemoveDistinct(numKeys: number, ...args: Array<string | number>): Promise<string[]>;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 500;
export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;

/** Reconnect delay: 50 ms doubling to a 2 s cap, for ever. */
export function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(Math.max(times - 1, 0), 6), 2000);
}

interface ParsedUrl {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls: boolean;
}

function parseUrl(url: string): ParsedUrl {
  const u = new URL(url);
  const out: ParsedUrl = {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port === '' ? 6379 : Number(u.port),
    tls: u.protocol === 'rediss:',
  };
  if (u.username !== '') out.username = decodeURIComponent(u.username);
  if (u.password !== '') out.password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, '');
  if (/^\d+$/.test(db)) out.db = Number(db);
  return out;
}

function nodeOptions(o: ConnectOptions, p: ParsedUrl): RedisOptions {
  const opts: RedisOptions = {
    commandTimeout: o.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectTimeout: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    autoResubscribe: false,
    retryStrategy: reconnectDelay,
  };
  if (p.username !== undefined) opts.username = p.username;
  if (p.password !== undefined) opts.password = p.password;
  if (p.db !== undefined) opts.db = p.db;
  if (p.tls) opts.tls = {};
  return opts;
}

function defineScripts(client: RedisClient): void {
  client.defineCommand('agAdd', { lua: ADD_LUA });
  client.defineCommand('agCount', { lua: COUNT_LUA, readOnly: true });
  client.defineCommand('agLeaves', { lua: LEAVES_LUA, readOnly: true });
  client.defineCommand('agRemove', { lua: REMOVE_LUA });
  client.defineCommand('agAddDistinct', { lua: ADD_DISTINCT_LUA });
  client.defineCommand('agCountDistinct', { lua: COUNT_DISTINCT_LUA }); // writes its scratch key
  client.defineCommand('agRemoveDistinct', { lua: REMOVE_DISTINCT_LUA });
}

/** Connects (in the background) to one Redis or a Redis Cluster, with the store's scripts defined. */
export function createRedisClient(target: string | readonly string[], o: ConnectOptions = {}): RedisClient {
  let client: RedisClient;
  if (typeof target === 'string') {
    const p = parseUrl(target);
    client = new Redis({ ...nodeOptions(o, p), host: p.host, port: p.port });
  } else {
    if (target.length === 0) throw new Error('a Redis Cluster needs at least one node URL');
    const nodes = target.map(parseUrl);
    const { retryStrategy: _r, enableOfflineQueue: _q, db: _db, ...redisOptions } = nodeOptions(o, nodes[0]!);
    const opts: ClusterOptions = {
      // Node connections open lazily; without this queue a command meeting a node connection
      // still connecting is bounced to a random node and redirected (MOVED), out of order.
      // Every store call has its own deadline, so nothing waits on this queue for long.
      enableOfflineQueue: true,
      clusterRetryStrategy: reconnectDelay,
      retryDelayOnClusterDown: 100,
      retryDelayOnFailover: 100,
      retryDelayOnTryAgain: 100,
      maxRedirections: 4,
      slotsRefreshTimeout: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      redisOptions,
    };
    client = new Cluster(
      nodes.map((n) => ({ host: n.host, port: n.port })),
      opts,
    );
  }
  defineScripts(client);
  // Without a listener an 'error' event would crash the process; the store reports failures itself.
  client.on('error', (err: Error) => o.logger?.debug({ err: err.message }, 'redis connection error'));
  return client;
}

export function scripts(client: RedisClient): ScriptCommands {
  return client as unknown as ScriptCommands;
}

/** Resolves true once the client is ready, false after `timeoutMs` (the client keeps trying). */
export function waitReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    client.on('ready', onReady);
  });
}

/** Closes politely (QUIT) within `timeoutMs`, then drops the connection regardless. */
export async function closeClient(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.quit().catch(() => undefined),
      new Promise((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
  client.disconnect();
}
