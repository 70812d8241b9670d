/**
 * A worker's operator controls (the engine's Controls seam): protected networks from the config
 * (every worker has it), and a copy of the primary's ban list, checked at every connect with no
 * round trip. The primary owns the list (the ban file, Redis, the admin API) and sends every
 * worker each change as it happens (primary-services.ts); a worker applies them in order.
 *
 * A policy's ban goes to the primary, which issues it with the whole history (escalation) and
 * sends it back to everyone. Meanwhile the worker holds a ban of the policy's first duration
 * itself, so its next connection from that prefix is refused as in one process; the primary's
 * ban replaces it (or its lift removes it, when the primary's list is full).
 */
import type { Config } from '../config/types.js';
import { BanList, clientPrefix, type Ban } from '../bans/ban-list.js';
import type { Controls } from '../audit/controls.js';
import type { CompiledPolicy } from '../policy/compile.js';
import type { ClientAddress } from '../series/address.js';
import type { Clock } from '../series/clock.js';
import { PrefixSet } from '../series/prefix-set.js';
import type { BanChange, WireBanRequest } from './messages.js';

export class WorkerControls implements Controls {
  readonly list: BanList;
  private protectedSet = new PrefixSet<true>();
  /** Connections refused because their client was banned. */
  refused = 0;

  constructor(
    config: Config,
    clock: Clock,
    private readonly request: (r: WireBanRequest) => void,
    private node: string = config.server.hostname,
  ) {
    this.list = new BanList(clock);
    this.configure(config);
  }

  configure(config: Config): void {
    this.protectedSet = PrefixSet.of(config.protected);
    this.node = config.server.hostname;
  }

  /** The primary's bans in force (at start), then its changes as they come. */
  apply(changes: readonly BanChange[]): void {
    for (const c of changes) {
      if ('lift' in c) this.list.lift(c.lift);
      else this.list.put(c.ban);
    }
  }

  isProtected(client: ClientAddress | undefined): boolean {
    return this.protectedSet.size > 0 && this.protectedSet.has(client);
  }

  banned(client: ClientAddress | undefined): Ban | undefined {
    if (this.list.size === 0) return undefined;
    this.list.sweep();
    const b = this.list.check(client);
    if (!b || this.isProtected(client)) return undefined;
    this.refused++;
    return b;
  }

  ban(client: ClientAddress, policy: CompiledPolicy, cid: string): void {
    if (!policy.ban || this.isProtected(client)) return;
    const prefix = clientPrefix(client, policy.mask);
    const r = this.list.issue(prefix, policy.ban, policy.name, this.node);
    // a new ban here, or none (this copy is full): the primary decides; a ban already held here came from it
    if (!r || r.created) this.request({ issue: { prefix, spec: policy.ban, policy: policy.name, cid } });
  }
}
