/**
 * The ban list (pure: no I/O, time from the injected clock): banned prefixes with their expiry,
 * and the escalation history that makes a prefix banned again soon after get a longer ban.
 *
 * - Lookup: `check(client)` finds the most specific active ban holding the client with one hash
 *   lookup per prefix length present (PrefixSet), whatever the number of bans.
 * - Escalation: a prefix banned again while its last ban lasts or ended less than the policy's
 *   `max` ago gets `for × factor^n`, capped at `max` (n = 1, 2, … for the second, third, … ban of
 *   the run), so a prefix that keeps coming back stays at the cap. The history of a prefix is
 *   kept until `max` after its last ban ends; lifting a ban forgets it.
 * - Bounded: at most `maxBans` bans. At the bound a new ban is not added (`issue` and `put`
 *   return undefined and `skipped` grows); bans already listed stay until they expire or are
 *   lifted, and the policies go on refusing whoever they refuse.
 *
 * Every ban is an immutable object; a change replaces it (a save may hold the old one safely).
 */
import { FAMILY_BITS, applyMask, formatAddress, parsePrefix, prefixContains, type ClientAddress, type Family } from '../series/address.js';
import type { Clock } from '../series/clock.js';
import { PrefixSet } from '../series/prefix-set.js';

/** The policy name a ban added by hand carries (a policy name cannot contain parentheses). */
export const MANUAL_POLICY = '(manual)';

export interface Ban {
  /** Normalized prefix with its length: `192.0.2.0/24`, `198.51.100.7/32`, `2001:db8::/64`. */
  readonly prefix: string;
  /** Epoch ms when it was issued. */
  readonly since: number;
  /** Epoch ms when it expires. */
  readonly until: number;
  /** The policy that issued it, or MANUAL_POLICY. */
  readonly policy: string;
  /** Escalation step: 0 for the first ban of a run, n for the (n+1)th. */
  readonly level: number;
  /** The node that issued it (cluster), when known. */
  readonly node?: string;
}

/** A change to the ban list: a ban in force, or a lift of exactly this prefix. */
export type BanChange = { ban: Ban } | { lift: string };

/** When a prefix was last banned, at which level, and until when that counts for escalation (its end + max). */
export interface BanHistory {
  readonly at: number;
  readonly level: number;
  readonly keepUntil: number;
}

/** A policy's ban, in milliseconds. */
export interface BanSpec {
  forMs: number;
  factor: number;
  maxMs: number;
}

export const DEFAULT_MAX_BANS = 1_000_000;

/** A prefix in its normalized text form (`192.0.2.7/32`), or null for anything else. */
export function normalizeBanPrefix(text: string): { prefix: string; family: Family; words: Uint32Array; mask: number } | null {
  const p = parsePrefix(text.trim());
  if (!p) return null;
  return { prefix: `${formatAddress(p.family, p.words)}/${p.mask}`, family: p.family, words: p.words, mask: p.mask };
}

type Prefix = NonNullable<ReturnType<typeof normalizeBanPrefix>>;

/** True when one prefix holds the other (they share addresses). */
export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const n = FAMILY_BITS[a.family] / 32;
  return a.mask <= b.mask ? prefixContains(a.words, a.mask, b.words, b.mask, n) : prefixContains(b.words, b.mask, a.words, a.mask, n);
}

/** The prefix of `client` at `mask` (the whole address when undefined, or longer than the family). */
export function clientPrefix(client: ClientAddress, mask: number | undefined): string {
  const bits = Math.min(mask ?? FAMILY_BITS[client.family], FAMILY_BITS[client.family]);
  const w = new Uint32Array(4);
  w.set(client.words);
  applyMask(w, client.family, bits);
  return `${formatAddress(client.family, w)}/${bits}`;
}

/** The duration and level of a ban after the prefix's live `history` (undefined: none), and until when it counts. */
export function escalate(spec: BanSpec, history: BanHistory | undefined, now: number): { ms: number; level: number; keepUntil: number } {
  const level = history && history.keepUntil > now ? history.level + 1 : 0;
  const ms = Math.min(spec.forMs * spec.factor ** level, spec.maxMs);
  return { ms, level, keepUntil: now + ms + spec.maxMs };
}

export class BanList {
  private set = new PrefixSet<Ban>();
  private readonly bans = new Map<string, Ban>();
  private readonly history = new Map<string, BanHistory>();
  /** The earliest expiry of a listed ban or history entry (a sweep before it finds nothing). */
  private nextExpiry = Infinity;
  /** Bans not added because the list was full, since start. */
  skipped = 0;
  /** Grows with every change (a ban added, replaced, lifted or expired, history changed). */
  changes = 0;

  constructor(
    private readonly clock: Clock,
    readonly maxBans = DEFAULT_MAX_BANS,
  ) {}

  /** Listed bans (expired ones included until the next sweep). */
  get size(): number {
    return this.bans.size;
  }

  /** The most specific active ban holding `client`, or undefined. */
  check(client: ClientAddress | undefined): Ban | undefined {
    if (this.bans.size === 0) return undefined;
    const now = this.clock.now();
    return this.set.find(client, (b) => b.until > now);
  }

  /** The active ban on exactly this (normalized) prefix. */
  get(prefix: string): Ban | undefined {
    const b = this.bans.get(prefix);
    return b && b.until > this.clock.now() ? b : undefined;
  }

  /** Active bans whose prefix holds, or lies inside, `prefix` (normalized). */
  overlapping(prefix: string): Ban[] {
    const p = normalizeBanPrefix(prefix);
    if (!p) return [];
    const now = this.clock.now();
    return [...this.bans.values()].filter((b) => b.until > now && prefixesOverlap(p, normalizeBanPrefix(b.prefix)!));
  }

  /**
   * A policy bans `prefix` (normalized): an active ban on it stays as it is; otherwise a new one
   * for the escalated duration. Returns the ban in force and whether it is new; undefined when
   * the list is full.
   */
  issue(prefix: string, spec: BanSpec, policy: string, node?: string): { ban: Ban; created: boolean } | undefined {
    const current = this.get(prefix);
    if (current) return { ban: current, created: false };
    const now = this.clock.now();
    const { ms, level, keepUntil } = escalate(spec, this.liveHistory(prefix, now), now);
    const ban: Ban = node === undefined ? { prefix, since: now, until: now + ms, policy, level } : { prefix, since: now, until: now + ms, policy, level, node };
    if (!this.put(ban)) return undefined;
    this.putHistory(prefix, { at: now, level, keepUntil });
    return { ban, created: true };
  }

  /** Adds or replaces a ban (by hand, from a file, from the cluster). False when it has expired or the list is full. */
  put(ban: Ban): boolean {
    if (ban.until <= this.clock.now()) return false;
    const old = this.bans.get(ban.prefix);
    if (!old && this.bans.size >= this.maxBans) {
      this.skipped++;
      return false;
    }
    this.bans.set(ban.prefix, ban);
    this.set.add(ban.prefix, ban);
    this.nextExpiry = Math.min(this.nextExpiry, ban.until);
    this.changes++;
    return true;
  }

  /** Removes the ban on exactly `prefix` and forgets its history. Returns the ban (active or not), if there was one. */
  lift(prefix: string): Ban | undefined {
    const b = this.bans.get(prefix);
    if (b) this.remove(b.prefix);
    if (this.history.delete(prefix) || b) this.changes++;
    return b;
  }

  /** The escalation history of a prefix, while it counts. */
  liveHistory(prefix: string, now = this.clock.now()): BanHistory | undefined {
    const h = this.history.get(prefix);
    return h && h.keepUntil > now ? h : undefined;
  }

  /** Records (or replaces) the history of a prefix, unless it has run out. */
  putHistory(prefix: string, h: BanHistory): void {
    if (h.keepUntil <= this.clock.now()) return;
    this.history.set(prefix, h);
    this.nextExpiry = Math.min(this.nextExpiry, h.keepUntil);
    this.changes++;
  }

  /** Drops expired bans and history; returns the bans dropped. Cheap when nothing is due. */
  sweep(): number {
    const now = this.clock.now();
    if (now < this.nextExpiry) return 0;
    let dropped = 0;
    let next = Infinity;
    for (const b of [...this.bans.values()]) {
      if (b.until <= now) {
        this.remove(b.prefix);
        dropped++;
      } else next = Math.min(next, b.until);
    }
    for (const [prefix, h] of [...this.history]) {
      if (h.keepUntil <= now) this.history.delete(prefix);
      else next = Math.min(next, h.keepUntil);
    }
    this.nextExpiry = next;
    this.changes++;
    return dropped;
  }

  /** The active bans, soonest expiry first (a copy: the caller may hold it across awaits). */
  list(): Ban[] {
    const now = this.clock.now();
    return [...this.bans.values()].filter((b) => b.until > now).sort((a, b) => a.until - b.until || a.prefix.localeCompare(b.prefix));
  }

  /** Every listed ban and history entry, as they are (for a save). */
  entries(): { bans: Ban[]; history: Array<[string, BanHistory]> } {
    return { bans: [...this.bans.values()], history: [...this.history] };
  }

  private remove(prefix: string): void {
    this.bans.delete(prefix);
    this.set.delete(prefix);
    if (this.bans.size === 0) this.set = new PrefixSet<Ban>(); // lengths of long-gone bans cost nothing after this
  }
}
