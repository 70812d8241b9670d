/**
 * Concurrent sessions per prefix: a gauge, kept in two in-process series (IPv4 and IPv6) whose
 * single window never closes, so a session's +1 at connect and -1 at close leave the running
 * sums per /24, /64 … exact. Policies read it as the series `sessions`.
 */
import type { Clock } from '../series/clock.js';
import { CidrSeries } from '../series/cidr-series.js';
import { parseAddressInto } from '../series/address.js';

/** ~317 years: the gauge's one window does not close in practice. */
const FOREVER = 1e10;

export class SessionTracker {
  private readonly v4: CidrSeries;
  private readonly v6: CidrSeries;
  private open = 0;
  private readonly scratch = new Uint32Array(4);

  constructor(clock: Clock) {
    this.v4 = new CidrSeries({ name: 'sessions', type: 'cidr', interval: FOREVER, windows: 1, options: { max_keys: 1_000_000 } }, clock);
    this.v6 = new CidrSeries({ name: 'sessions6', type: 'cidr_ipv6', interval: FOREVER, windows: 1, options: { max_keys: 1_000_000 } }, clock);
  }

  private seriesFor(ip: string): CidrSeries | undefined {
    const f = parseAddressInto(ip, this.scratch);
    return f === 4 ? this.v4 : f === 6 ? this.v6 : undefined;
  }

  opened(ip: string): void {
    const s = this.seriesFor(ip);
    if (!s) return;
    s.add(ip, 1);
    this.open++;
  }

  closed(ip: string): void {
    const s = this.seriesFor(ip);
    if (!s) return;
    s.add(ip, -1);
    this.open--;
    if (s.count(ip) <= 0) s.removeItem(ip);
  }

  /** Open sessions from `ip` or `ip/mask`. */
  count(key: string): number {
    const ip = key.split('/')[0] ?? key;
    const s = this.seriesFor(ip);
    return s ? s.count(key) : 0;
  }

  total(): number {
    return this.open;
  }

  top(mask: number, family: 4 | 6 = 4, limit = 10): Array<{ key: string; count: number }> {
    return (family === 4 ? this.v4 : this.v6).top({ mask, limit });
  }
}
