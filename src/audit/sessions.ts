/**
 * Concurrent sessions per client and per prefix: the gauges `sessions` (IPv4 clients) and
 * `sessions6` (IPv6 clients) that policies read, and the admin API shows.
 *
 * Open sessions per exact address are a Map, which is all a session's open and close cost
 * until someone asks for a prefix (a policy with `series: sessions, mask: 24`, or the admin
 * top). From then on two in-process series (IPv4 and IPv6) whose single window never closes
 * are kept too, seeded from the Map, so the running sums per /24, /64 … stay exact.
 */
import type { Clock } from '../series/clock.js';
import { CidrSeries } from '../series/cidr-series.js';
import { parseClientAddress, type ClientAddress } from '../series/address.js';

/** ~317 years: the gauge's one window does not close in practice. */
const FOREVER = 1e10;

/**
 * The gauge as the engine and the recorder use it: in process (SessionTracker), or kept by the
 * primary of a multi-process gateway (src/cluster/), whose answer then arrives asynchronously.
 */
export interface SessionGauge {
  opened(client: ClientAddress | undefined): void;
  closed(client: ClientAddress | undefined): void;
  /** Open sessions from the client's prefix at `mask` (the exact address without one). */
  countAt(client: ClientAddress, mask: number | undefined): number | Promise<number>;
}

export class SessionTracker implements SessionGauge {
  /** Open sessions per client address (normalized text). */
  private readonly perAddress = new Map<string, number>();
  private prefixes: { 4: CidrSeries; 6: CidrSeries } | undefined;
  private open = 0;

  constructor(private readonly clock: Clock) {}

  /** A session from `client` opened (a client without an address is not tracked). */
  opened(client: ClientAddress | undefined): void {
    if (!client) return;
    this.perAddress.set(client.text, (this.perAddress.get(client.text) ?? 0) + 1);
    this.open++;
    this.prefixes?.[client.family].addAddress(client, 1);
  }

  closed(client: ClientAddress | undefined): void {
    if (!client) return;
    const n = (this.perAddress.get(client.text) ?? 0) - 1;
    if (n < 0) return; // not ours (never opened): nothing to undo
    if (n === 0) this.perAddress.delete(client.text);
    else this.perAddress.set(client.text, n);
    this.open--;
    const s = this.prefixes?.[client.family];
    if (s) {
      s.addAddress(client, -1);
      if (n === 0) s.removeAddress(client);
    }
  }

  /** Open sessions from the client's prefix at `mask` (the exact address without one). */
  countAt(client: ClientAddress, mask: number | undefined): number {
    if (mask === undefined || mask >= (client.family === 4 ? 32 : 128)) return this.perAddress.get(client.text) ?? 0;
    return this.ensurePrefixes()[client.family].countAddress(client, mask);
  }

  /** Open sessions from `ip` or `ip/mask` (the admin API's text form). */
  count(key: string): number {
    const slash = key.indexOf('/');
    const client = parseClientAddress(slash < 0 ? key : key.slice(0, slash));
    if (!client) return 0;
    if (slash < 0) return this.perAddress.get(client.text) ?? 0;
    return this.ensurePrefixes()[client.family].count(key);
  }

  total(): number {
    return this.open;
  }

  top(mask: number, family: 4 | 6 = 4, limit = 10): Array<{ key: string; count: number }> {
    return this.ensurePrefixes()[family].top({ mask, limit });
  }

  private ensurePrefixes(): { 4: CidrSeries; 6: CidrSeries } {
    if (this.prefixes) return this.prefixes;
    const v4 = new CidrSeries({ name: 'sessions', type: 'cidr', interval: FOREVER, windows: 1, options: { max_keys: 1_000_000 } }, this.clock);
    const v6 = new CidrSeries({ name: 'sessions6', type: 'cidr_ipv6', interval: FOREVER, windows: 1, options: { max_keys: 1_000_000 } }, this.clock);
    this.prefixes = { 4: v4, 6: v6 };
    for (const [ip, n] of this.perAddress) {
      const client = parseClientAddress(ip);
      if (client) this.prefixes[client.family].addAddress(client, n);
    }
    return this.prefixes;
  }
}
