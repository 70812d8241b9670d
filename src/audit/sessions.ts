/**
 * Concurrent sessions per client and per prefix: a gauge that policies read as the series
 * `sessions` and the admin API shows.
 *
 * Open sessions per exact address are a Map, which is all a session's open and close cost
 * until someone asks for a prefix (a policy with `series: sessions, mask: 24`, or the admin
 * top). From then on two in-process series (IPv4 and IPv6) whose single window never closes
 * are kept too, seeded from the Map, so the running sums per /24, /64 … stay exact.
 */
import type { Clock } from '../series/clock.js';
import { CidrSeries } from '../series/cidr-series.js';
import { normalizeAddress, parseAddressInto } from '../series/address.js';

/** ~317 years: the gauge's one window does not close in practice. */
const FOREVER = 1e10;

export class SessionTracker {
  /** Open sessions per normalized client address. */
  private readonly perAddress = new Map<string, number>();
  private prefixes: { v4: CidrSeries; v6: CidrSeries } | undefined;
  private open = 0;
  private readonly scratch = new Uint32Array(4);

  constructor(private readonly clock: Clock) {}

  /** `ip` must be normalized (normalizeAddress), as the front passes it; closed() takes the same. */
  opened(ip: string): void {
    if (ip === '') return; // no address: not tracked per prefix
    this.perAddress.set(ip, (this.perAddress.get(ip) ?? 0) + 1);
    this.open++;
    this.seriesFor(ip)?.add(ip, 1);
  }

  closed(ip: string): void {
    const n = (this.perAddress.get(ip) ?? 0) - 1;
    if (n < 0) return; // not ours (never opened): nothing to undo
    if (n === 0) this.perAddress.delete(ip);
    else this.perAddress.set(ip, n);
    this.open--;
    const s = this.seriesFor(ip);
    if (s) {
      s.add(ip, -1);
      if (n === 0) s.removeItem(ip);
    }
  }

  /** Open sessions from `ip` or `ip/mask`. */
  count(key: string): number {
    const slash = key.indexOf('/');
    if (slash < 0) {
      const ip = normalizeAddress(key)?.address;
      return ip === undefined ? 0 : (this.perAddress.get(ip) ?? 0);
    }
    const prefixes = this.ensurePrefixes();
    const f = parseAddressInto(key.slice(0, slash), this.scratch);
    const s = f === 4 ? prefixes.v4 : f === 6 ? prefixes.v6 : undefined;
    return s ? s.count(key) : 0;
  }

  total(): number {
    return this.open;
  }

  top(mask: number, family: 4 | 6 = 4, limit = 10): Array<{ key: string; count: number }> {
    const p = this.ensurePrefixes();
    return (family === 4 ? p.v4 : p.v6).top({ mask, limit });
  }

  /** The series for `ip` once prefixes are kept; undefined before (or for a non-address). */
  private seriesFor(ip: string): CidrSeries | undefined {
    const p = this.prefixes;
    if (!p) return undefined;
    const f = parseAddressInto(ip, this.scratch);
    return f === 4 ? p.v4 : f === 6 ? p.v6 : undefined;
  }

  private ensurePrefixes(): { v4: CidrSeries; v6: CidrSeries } {
    if (this.prefixes) return this.prefixes;
    const v4 = new CidrSeries({ name: 'sessions', type: 'cidr', interval: FOREVER, windows: 1, options: { max_keys: 1_000_000 } }, this.clock);
    const v6 = new CidrSeries({ name: 'sessions6', type: 'cidr_ipv6', interval: FOREVER, windows: 1, options: { max_keys: 1_000_000 } }, this.clock);
    this.prefixes = { v4, v6 };
    for (const [ip, n] of this.perAddress) this.seriesFor(ip)?.add(ip, n);
    return this.prefixes;
  }
}
