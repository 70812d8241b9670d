/**
 * Whether a backend is worth trying: a backend that could not be reached (connection refused or
 * timed out, greeting or EHLO refused, TLS that does not check out) is down and skipped for a
 * back-off that doubles with each failure in a row (BACKOFF_MIN_MS … BACKOFF_MAX_MS). When it
 * runs out, one transaction may try the backend again (the others still skip it until that try
 * failed or the same back-off passed again); a success brings it back up. The transitions are
 * returned so the caller logs each once. Pure: time comes from the clock.
 */
import type { Clock } from '../../series/clock.js';

export const BACKOFF_MIN_MS = 1_000;
export const BACKOFF_MAX_MS = 30_000;

export type HealthState = 'unknown' | 'up' | 'down';

export class BackendHealth {
  state: HealthState = 'unknown';
  /** Why it went down (the last failure). */
  reason: string | undefined;
  /** Epoch ms when it went down. */
  downSince = 0;
  private failures = 0;
  private retryAt = 0;

  constructor(private readonly clock: Clock) {}

  /** The back-off after the current run of failures. */
  get backoffMs(): number {
    return Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, Math.min(this.failures - 1, 16)));
  }

  /** Milliseconds until a down backend may be tried again (0 when it may be tried now). */
  retryInMs(): number {
    return this.state === 'down' ? Math.max(0, this.retryAt - this.clock.now()) : 0;
  }

  /**
   * May a transaction try this backend now? A down backend whose back-off ran out says yes
   * once, and pushes its retry time out by another back-off, so concurrent transactions do not
   * all wait on a backend that may still be gone.
   */
  claim(): boolean {
    if (this.state !== 'down') return true;
    const now = this.clock.now();
    if (now < this.retryAt) return false;
    this.retryAt = now + this.backoffMs;
    return true;
  }

  /** A connection was opened. Returns 'recovered' when the backend was down until now. */
  succeeded(): 'recovered' | undefined {
    const was = this.state;
    this.state = 'up';
    this.failures = 0;
    this.reason = undefined;
    return was === 'down' ? 'recovered' : undefined;
  }

  /** A connection could not be opened. Returns 'down' when the backend just went down. */
  failed(reason: string): 'down' | undefined {
    const was = this.state;
    const now = this.clock.now();
    this.failures++;
    this.reason = reason;
    this.retryAt = now + this.backoffMs;
    if (was === 'down') return undefined;
    this.state = 'down';
    this.downSince = now;
    return 'down';
  }
}
