/**
 * The operator controls as the session engine and the admin API see them: protected networks
 * (never refused, tarpitted or banned; still counted) and bans (a banned client is refused at
 * connect before anything else runs). The engine asks `isProtected`, `banned` and `ban`; the
 * admin API lists, adds and lifts bans here, where a ban covering a protected network is refused.
 */
import type { Config } from '../config/types.js';
import { AuditgateError } from '../errors.js';
import { type Ban, type BanChange, clientPrefix, normalizeBanPrefix, prefixesOverlap } from '../bans/ban-list.js';
import type { BanService } from '../bans/ban-service.js';
import type { CompiledPolicy } from '../policy/compile.js';
import type { ClientAddress } from '../series/address.js';
import { PrefixSet } from '../series/prefix-set.js';

/** What the session engine asks of the controls. */
export interface Controls {
  /** True when the client is in a protected network. */
  isProtected(client: ClientAddress | undefined): boolean;
  /** The active ban holding the client (a protected client is never banned). */
  banned(client: ClientAddress | undefined): Ban | undefined;
  /** An enforcing policy with `ban` fired for the client. */
  ban(client: ClientAddress, policy: CompiledPolicy, cid: string): void;
}

export class OperatorControls implements Controls {
  private protectedSet = new PrefixSet<true>();
  private protectedList: string[] = [];
  /** Told of each ban made or lifted by hand (the journal records them for replay). */
  onManual: ((change: BanChange) => void) | undefined;

  constructor(
    readonly bans: BanService,
    config: Config,
  ) {
    this.configure(config);
  }

  /** Applies a (reloaded) config: the protected networks. */
  configure(config: Config): void {
    this.protectedSet = PrefixSet.of(config.protected);
    this.protectedList = config.protected;
  }

  isProtected(client: ClientAddress | undefined): boolean {
    return this.protectedSet.size > 0 && this.protectedSet.has(client);
  }

  banned(client: ClientAddress | undefined): Ban | undefined {
    if (this.bans.list.size === 0) return undefined;
    const b = this.bans.list.check(client);
    if (!b || this.isProtected(client)) return undefined;
    this.bans.refusedOne();
    return b;
  }

  ban(client: ClientAddress, policy: CompiledPolicy, cid: string): void {
    if (!policy.ban || this.isProtected(client)) return;
    this.bans.issue(clientPrefix(client, policy.mask), policy.ban, policy.name, cid);
  }

  // ---- the admin API ---------------------------------------------------------------------

  /** Bans `prefix` by hand for `seconds`; refused (AG_BAN) when it shares addresses with a protected network. */
  add(prefix: string, seconds: number): Ban {
    const p = normalizeBanPrefix(prefix);
    if (!p) throw new AuditgateError('AG_KEY_INVALID', `"${prefix}" is not an IP address or CIDR prefix (e.g. 198.51.100.7, 192.0.2.0/24, 2001:db8::/48)`);
    const hit = this.protectedList.find((c) => prefixesOverlap(p, normalizeBanPrefix(c)!));
    if (hit) throw new AuditgateError('AG_BAN', `${p.prefix} covers the protected network ${hit} (protected:): it is never banned`);
    const ban = this.bans.add(p.prefix, seconds);
    this.onManual?.({ ban });
    return ban;
  }

  /** Lifts the ban on exactly `prefix`; AG_BAN_NOT_FOUND (naming any ban that covers it) when there is none. */
  lift(prefix: string): Ban {
    const p = normalizeBanPrefix(prefix);
    if (!p) throw new AuditgateError('AG_KEY_INVALID', `"${prefix}" is not an IP address or CIDR prefix (e.g. 198.51.100.7, 192.0.2.0/24, 2001:db8::/48)`);
    const lifted = this.bans.lift(p.prefix);
    if (lifted) {
      this.onManual?.({ lift: p.prefix });
      return lifted;
    }
    const near = this.bans.list.overlapping(p.prefix).map((b) => b.prefix);
    throw new AuditgateError('AG_BAN_NOT_FOUND', `no ban on ${p.prefix}${near.length ? `; bans sharing addresses with it: ${near.slice(0, 5).join(', ')}${near.length > 5 ? ', …' : ''}` : ''}`);
  }

  list(): Ban[] {
    this.bans.sweep();
    return this.bans.list.list();
  }
}
