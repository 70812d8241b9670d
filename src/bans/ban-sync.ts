/**
 * The ban list shared through Redis (`store.redis`): every node keeps its own copy (checked at
 * every connect, no round trip) and keeps it the same as every other node's.
 *
 * - A change made here (a policy's ban, one added by hand, a lift) goes to Redis in one atomic
 *   script (ban-scripts.ts), which publishes it: every other node applies it as it arrives
 *   (pub/sub on a connection of its own), so a lift takes effect everywhere at once. A policy's
 *   ban is escalated with the history all nodes share; the node adopts what Redis answers.
 * - A resync (every `resyncMs` when the change counter moved, and after every reconnect) pages
 *   through Redis' bans and makes the local copy match: bans it lacks are added; a local ban
 *   Redis lacks is merged back into Redis unless it was lifted since (then it goes here too).
 *   So a node that missed messages catches up, and a Redis that restarted empty is refilled.
 * - Redis out of reach: the node keeps its copy and keeps deciding with it; its own changes wait
 *   (bounded, `maxPending` prefixes; the latest change of a prefix wins) and are merged back when
 *   Redis answers again — a ban issued meanwhile stays unless Redis holds a longer one, a lift
 *   removes only bans issued before it.
 *
 * Commands have the store's timeouts and no offline queue (store/redis-connect.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../series/clock.js';
import { type RedisClient, closeClient, createRedisClient, waitReady } from '../store/redis-connect.js';
import { DEFAULT_KEY_PREFIX } from '../store/redis-layout.js';
import { normalizeBanPrefix, type Ban, type BanHistory, type BanSpec } from './ban-list.js';
import { BAN_LUA, LIFT_LUA, PUT_LUA } from './ban-scripts.js';
import type { BanService, BanShare } from './ban-service.js';

export interface BanSyncOptions {
  redis: string | readonly string[];
  service: BanService;
  clock: Clock;
  logger: Logger;
  keyPrefix?: string;
  /** How often the change counter is checked (a resync when it moved). Default 10 s. */
  resyncMs?: number;
  /** How often an unreachable Redis is asked again. Default 1 s. */
  probeMs?: number;
  /** Prefixes whose changes wait while Redis is out of reach. Default 100,000. */
  maxPending?: number;
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

interface BanCommands {
  agBan(numKeys: number, ...args: Array<string | number>): Promise<string>;
  agBanPut(numKeys: number, ...args: Array<string | number>): Promise<string>;
  agBanLift(numKeys: number, ...args: Array<string | number>): Promise<number>;
}

type Pending = { op: 'put'; ban: Ban; history?: BanHistory } | { op: 'lift'; at: number; markerMs: number };

/** Ban keys read per page of a resync. */
const PAGE = 1000;
/** A lift seen here wins over a resync listing read before it for this long. */
const TOMBSTONE_MS = 60_000;

export class BanSync implements BanShare {
  private readonly client: RedisClient;
  private readonly sub: RedisClient;
  private readonly base: string;
  private readonly channel: string;
  /** This node's id in published messages (its own messages are skipped). */
  readonly id = randomBytes(6).toString('hex');
  private state: 'ok' | 'down' = 'ok';
  private readonly pending = new Map<string, Pending>();
  private dropped = 0;
  private readonly tombstones = new Map<string, number>();
  private lastVersion: string | null | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private resyncing: Promise<void> | undefined;
  private closed = false;

  private constructor(private readonly opts: BanSyncOptions) {
    const timeouts = { commandTimeoutMs: opts.commandTimeoutMs ?? 500, connectTimeoutMs: opts.connectTimeoutMs ?? 2000, logger: opts.logger };
    this.client = createRedisClient(opts.redis, timeouts);
    this.client.defineCommand('agBan', { lua: BAN_LUA });
    this.client.defineCommand('agBanPut', { lua: PUT_LUA });
    this.client.defineCommand('agBanLift', { lua: LIFT_LUA });
    this.sub = createRedisClient(opts.redis, timeouts);
    this.base = `${opts.keyPrefix ?? DEFAULT_KEY_PREFIX}{bans}`;
    this.channel = `${this.base}:events`;
  }

  /** Connects (waiting at most connectTimeoutMs; unreachable means starting "down"), subscribes, resyncs. */
  static async connect(opts: BanSyncOptions): Promise<BanSync> {
    const s = new BanSync(opts);
    s.sub.on('message', (channel: string, message: string) => {
      if (channel === s.channel) s.onMessage(message);
    });
    // After every (re)connect: subscribe again (no automatic resubscription) and catch up on what was missed.
    s.sub.on('ready', () => void s.subscribe());
    const ready = await waitReady(s.client, opts.connectTimeoutMs ?? 2000);
    if (!ready) s.down(new Error('not reachable at start'));
    else await s.resync().catch((err: unknown) => s.down(err));
    s.resyncTimer = setInterval(() => void s.tick(), opts.resyncMs ?? 10_000);
    s.resyncTimer.unref();
    return s;
  }

  status(): { state: 'ok' | 'down'; pending: number; dropped: number } {
    return { state: this.state, pending: this.pending.size, dropped: this.dropped };
  }

  // ---- changes made here ------------------------------------------------------------------

  issued(ban: Ban, spec: BanSpec): void {
    if (this.state !== 'ok') return this.wait(ban.prefix, { op: 'put', ban, history: this.history(ban.prefix) });
    const { clock } = this.opts;
    this.cmd()
      .agBan(4, ...this.keys(ban.prefix).slice(0, 4), ban.prefix, clock.now(), spec.forMs, spec.factor, spec.maxMs, ban.policy, ban.node ?? '', this.channel, this.id)
      .then(
        (json) => this.adopt(json),
        (err: unknown) => {
          this.down(err);
          this.wait(ban.prefix, { op: 'put', ban, history: this.history(ban.prefix) });
        },
      );
  }

  added(ban: Ban): void {
    this.send(ban.prefix, { op: 'put', ban }, 'set');
  }

  lifted(prefix: string, markerMs = 0): void {
    this.send(prefix, { op: 'lift', at: this.opts.clock.now(), markerMs }, 'set');
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.pending.size > 0) this.opts.logger.warn({ pending: this.pending.size }, 'ban changes not shared with the cluster (Redis unreachable at shutdown)');
    await Promise.all([closeClient(this.client, 500), closeClient(this.sub, 500)]);
  }

  // ---- the wire --------------------------------------------------------------------------

  private cmd(): BanCommands {
    return this.client as unknown as BanCommands;
  }

  private keys(prefix: string): [string, string, string, string, string] {
    return [`${this.base}:b:${prefix}`, `${this.base}:h:${prefix}`, `${this.base}:i`, `${this.base}:v`, `${this.base}:l:${prefix}`];
  }

  private history(prefix: string): BanHistory | undefined {
    return this.opts.service.list.liveHistory(prefix);
  }

  /** Runs one change now (`set`: as made here; `merge`: made while Redis was out of reach), or keeps it for later. */
  private send(prefix: string, change: Pending, mode: 'set' | 'merge'): void {
    if (this.state !== 'ok') return this.wait(prefix, change);
    this.run(prefix, change, mode).catch((err: unknown) => {
      this.down(err);
      this.wait(prefix, change);
    });
  }

  private async run(prefix: string, change: Pending, mode: 'set' | 'merge'): Promise<void> {
    const now = this.opts.clock.now();
    if (change.op === 'lift') {
      await this.cmd().agBanLift(5, ...this.keys(prefix), prefix, now, mode === 'merge' ? change.at : 0, change.markerMs, this.channel, this.id);
      return;
    }
    const { ban, history } = change;
    const h = history ? JSON.stringify(history) : '';
    const ttl = history ? Math.max(1, history.keepUntil - now) : 0;
    const reply = await this.cmd().agBanPut(5, ...this.keys(prefix), mode, now, JSON.stringify(ban), ban.since, ban.until, h, ttl, this.channel, this.id);
    if (reply === 'lifted') this.opts.service.applyRemote({ lift: prefix });
    else this.adopt(reply);
  }

  /** Makes Redis' answer (the ban in force cluster-wide) the local one. */
  private adopt(json: string): void {
    const ban = parseBan(json);
    if (!ban) return;
    const local = this.opts.service.list.get(ban.prefix);
    if (!local || local.until !== ban.until || local.level !== ban.level) this.opts.service.applyRemote({ ban });
  }

  private onMessage(message: string): void {
    let m: { op?: unknown; from?: unknown; ban?: unknown; prefix?: unknown };
    try {
      m = JSON.parse(message) as typeof m;
    } catch {
      return;
    }
    if (m.from === this.id) return;
    if (m.op === 'lift' && typeof m.prefix === 'string' && normalizeBanPrefix(m.prefix)?.prefix === m.prefix) {
      this.tombstones.set(m.prefix, this.opts.clock.now());
      this.opts.service.applyRemote({ lift: m.prefix });
    } else if (m.op === 'ban') {
      const ban = parseBan(JSON.stringify(m.ban));
      if (ban) this.opts.service.applyRemote({ ban });
    }
  }

  private async subscribe(): Promise<void> {
    try {
      await this.sub.subscribe(this.channel);
    } catch (err) {
      this.opts.logger.debug({ err }, 'ban events: subscribe failed (retried at the next reconnect)');
      return;
    }
    if (this.state === 'ok') void this.resync().catch((err: unknown) => this.down(err));
  }

  // ---- out of reach, and back ------------------------------------------------------------

  private wait(prefix: string, change: Pending): void {
    if (!this.pending.has(prefix) && this.pending.size >= (this.opts.maxPending ?? 100_000)) {
      if (this.dropped++ === 0) this.opts.logger.warn({ max_pending: this.opts.maxPending ?? 100_000 }, 'too many ban changes wait for Redis: further ones stay on this node');
      return;
    }
    this.pending.delete(prefix); // the latest change of a prefix, at the end (changes merge in order)
    this.pending.set(prefix, change);
  }

  private down(err: unknown): void {
    if (this.closed) return;
    if (this.state === 'ok') {
      this.state = 'down';
      this.opts.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'redis unavailable: bans are kept and enforced on this node; changes are merged back when it returns');
    }
    if (!this.probeTimer) {
      this.probeTimer = setInterval(() => void this.probe(), this.opts.probeMs ?? 1000);
      this.probeTimer.unref();
    }
  }

  private async probe(): Promise<void> {
    if (this.closed || this.resyncing) return;
    try {
      await this.client.ping();
      for (const [prefix, change] of [...this.pending]) {
        await this.run(prefix, change, 'merge');
        this.pending.delete(prefix);
      }
      this.state = 'ok';
      await this.resync();
    } catch (err) {
      this.state = 'down';
      this.opts.logger.debug({ err }, 'redis still unavailable for bans');
      return;
    }
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    this.opts.logger.info({ dropped: this.dropped }, 'redis is back: ban changes merged, ban list resynced');
    this.dropped = 0;
  }

  private async tick(): Promise<void> {
    if (this.state !== 'ok' || this.resyncing || this.closed) return;
    try {
      const v = await this.client.get(`${this.base}:v`);
      if (v !== this.lastVersion) await this.resync();
    } catch (err) {
      this.down(err);
    }
  }

  /** Makes the local copy match Redis (see the file header); one at a time. */
  private resync(): Promise<void> {
    this.resyncing ??= this.resyncNow().finally(() => {
      this.resyncing = undefined;
    });
    return this.resyncing;
  }

  private async resyncNow(): Promise<void> {
    const { service, clock } = this.opts;
    const started = clock.now();
    const version = await this.client.get(`${this.base}:v`);
    const remote = new Map<string, Ban>();
    for (let offset = 0; ; offset += PAGE) {
      const prefixes = await this.client.zrangebyscore(`${this.base}:i`, `(${clock.now()}`, '+inf', 'LIMIT', offset, PAGE);
      if (prefixes.length === 0) break;
      const values = await this.client.mget(...prefixes.map((p) => `${this.base}:b:${p}`));
      values.forEach((v) => {
        const b = v === null ? undefined : parseBan(v);
        if (b) remote.set(b.prefix, b);
      });
      if (prefixes.length < PAGE) break;
    }
    for (const [prefix, at] of this.tombstones) if (clock.now() - at > TOMBSTONE_MS) this.tombstones.delete(prefix);
    for (const b of remote.values()) {
      if ((this.tombstones.get(b.prefix) ?? -Infinity) >= started) continue; // lifted while we listed
      const local = service.list.get(b.prefix);
      if (!local || local.until !== b.until || local.level !== b.level) service.applyRemote({ ban: b });
    }
    // Local bans Redis lacks: merged back, unless lifted since (PUT_LUA answers "lifted").
    const missing = service.list.list().filter((b) => !remote.has(b.prefix) && !this.pending.has(b.prefix));
    for (let i = 0; i < missing.length; i += PAGE) {
      await Promise.all(missing.slice(i, i + PAGE).map((b) => this.run(b.prefix, { op: 'put', ban: b, history: this.history(b.prefix) }, 'merge')));
    }
    this.lastVersion = version;
  }
}

function parseBan(json: string): Ban | undefined {
  try {
    const o = JSON.parse(json) as Record<string, unknown>;
    const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : NaN);
    if (typeof o.prefix !== 'string' || normalizeBanPrefix(o.prefix)?.prefix !== o.prefix || typeof o.policy !== 'string') return undefined;
    const ban = { prefix: o.prefix, since: num(o.since), until: num(o.until), policy: o.policy, level: num(o.level) };
    if (![ban.since, ban.until, ban.level].every(Number.isFinite)) return undefined;
    return typeof o.node === 'string' && o.node !== '' ? { ...ban, node: o.node } : ban;
  } catch {
    return undefined;
  }
}
