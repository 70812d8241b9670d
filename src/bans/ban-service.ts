/**
 * The gateway's bans: the list (ban-list.ts) with its file (ban-persister.ts) and, in a
 * cluster, its shared copy in Redis (ban-sync.ts), plus what /metrics counts. Bans issued by
 * policies, added and lifted by hand all go through here, so each change is saved and shared.
 */
import type { Logger } from 'pino';
import { AuditgateError } from '../errors.js';
import type { Clock } from '../series/clock.js';
import { BanList, DEFAULT_MAX_BANS, MANUAL_POLICY, type Ban, type BanChange, type BanSpec } from './ban-list.js';
import { BanPersister } from './ban-persister.js';

/** What shares bans with the other nodes (ban-sync.ts); the service tells it every local change. */
export interface BanShare {
  /** A policy banned `ban` here (with `spec`, so the cluster escalates it with the history every node shares). */
  issued(ban: Ban, spec: BanSpec): void;
  added(ban: Ban): void;
  /** The ban on `prefix` was lifted here; `markerMs`: how long an older copy of it must not come back. */
  lifted(prefix: string, markerMs: number): void;
  /** Changes waiting for Redis (it is out of reach). */
  status(): { pending: number };
  close(): Promise<void>;
}

export interface BanServiceOptions {
  clock: Clock;
  logger: Logger;
  /** Where bans.state lives; no file when undefined. */
  stateDir?: string;
  /** Longest wait between a change and its save (ms). Default 1000. */
  saveDelayMs?: number;
  maxBans?: number;
  /** This node's name (bans it issues carry it). */
  node: string;
}

export interface BanStats {
  active: number;
  /** Bans issued per policy since start (hand-made ones under MANUAL_POLICY). */
  issued: ReadonlyMap<string, number>;
  lifted: number;
  /** Connections refused because their client was banned. */
  refused: number;
  /** Bans not added because the list was full. */
  skipped: number;
  /** Ban changes made here that wait for Redis (0 without a cluster). */
  unshared: number;
}

export class BanService {
  readonly list: BanList;
  readonly persister: BanPersister | undefined;
  share: BanShare | undefined;
  /** Told every change to the list but expiry (a multi-process gateway's primary tells its workers). */
  onChange: ((change: BanChange) => void) | undefined;
  private readonly issuedBy = new Map<string, number>();
  private lifted = 0;
  private refused = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private fullLogged = false;

  constructor(private readonly opts: BanServiceOptions) {
    this.list = new BanList(opts.clock, opts.maxBans ?? DEFAULT_MAX_BANS);
    if (opts.stateDir !== undefined) {
      this.persister = new BanPersister({ list: this.list, stateDir: opts.stateDir, logger: opts.logger, clock: opts.clock, delayMs: opts.saveDelayMs ?? 1000 });
    }
  }

  get node(): string {
    return this.opts.node;
  }

  /** Loads the ban file and starts dropping expired bans (checked every second, a no-op until one is due). */
  start(): void {
    this.persister?.load();
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
  }

  sweep(): void {
    if (this.list.sweep() > 0) this.persister?.changed();
  }

  /** A connection was refused because its client is banned (/metrics). */
  refusedOne(): void {
    this.refused++;
  }

  /** A policy bans `prefix`: a new (escalated) ban, or the one already in force. Undefined when the list is full. */
  issue(prefix: string, spec: BanSpec, policy: string, cid?: string): Ban | undefined {
    const r = this.list.issue(prefix, spec, policy, this.opts.node);
    if (!r) {
      this.noteFull(prefix);
      return undefined;
    }
    if (!r.created) return r.ban;
    this.count(policy);
    this.opts.logger.info({ cid, prefix, policy, until: new Date(r.ban.until).toISOString(), seconds: Math.round((r.ban.until - r.ban.since) / 1000), escalation: r.ban.level }, 'client banned');
    this.persister?.changed();
    this.share?.issued(r.ban, spec);
    this.onChange?.({ ban: r.ban });
    return r.ban;
  }

  /** Bans `prefix` by hand for `seconds` (replacing a ban on exactly that prefix). */
  add(prefix: string, seconds: number): Ban {
    const now = this.opts.clock.now();
    const ban: Ban = { prefix, since: now, until: now + Math.round(seconds * 1000), policy: MANUAL_POLICY, level: 0, node: this.opts.node };
    if (!this.list.put(ban)) throw new AuditgateError('AG_BAN', `the ban list is full (${this.list.maxBans} bans): ${prefix} was not banned`);
    this.count(MANUAL_POLICY);
    this.opts.logger.info({ prefix, until: new Date(ban.until).toISOString(), seconds }, 'client banned by hand');
    this.persister?.changed();
    this.share?.added(ban);
    this.onChange?.({ ban });
    return ban;
  }

  /** Lifts the ban on exactly `prefix` (and forgets its escalation); the removed ban, or undefined. */
  lift(prefix: string): Ban | undefined {
    const b = this.list.lift(prefix);
    const active = b && b.until > this.opts.clock.now() ? b : undefined;
    if (active) {
      this.lifted++;
      this.opts.logger.info({ prefix, policy: b!.policy }, 'ban lifted');
    }
    this.persister?.changed();
    this.share?.lifted(prefix, active ? active.until - this.opts.clock.now() : 0);
    this.onChange?.({ lift: prefix });
    return active;
  }

  /** Applies a change another node made (no sharing back): a ban in force, or a lift. */
  applyRemote(change: BanChange): void {
    if ('lift' in change) this.list.lift(change.lift);
    else if (!this.list.put(change.ban)) {
      if (change.ban.until > this.opts.clock.now()) this.noteFull(change.ban.prefix);
      return;
    }
    this.persister?.changed();
    this.onChange?.(change);
  }

  stats(): BanStats {
    this.sweep();
    return { active: this.list.size, issued: this.issuedBy, lifted: this.lifted, refused: this.refused, skipped: this.list.skipped, unshared: this.share?.status().pending ?? 0 };
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    await this.share?.close().catch((err: unknown) => this.opts.logger.warn({ err }, 'closing the shared ban list failed'));
    await this.persister?.stop().catch((err: unknown) => this.opts.logger.error({ err }, 'saving bans failed'));
  }

  private count(policy: string): void {
    this.issuedBy.set(policy, (this.issuedBy.get(policy) ?? 0) + 1);
  }

  private noteFull(prefix: string): void {
    if (this.fullLogged) return;
    this.fullLogged = true;
    this.opts.logger.warn({ prefix, max_bans: this.list.maxBans }, 'the ban list is full: new bans are skipped until bans expire or are lifted (policies still refuse)');
  }
}
