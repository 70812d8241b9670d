import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/series/clock.js';
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS, BackendHealth } from '../../../../src/smtp/relay/backend-health.js';

describe('BackendHealth', () => {
  it('goes down once, is skipped for a back-off that doubles, and comes back once', () => {
    const clock = new ManualClock(1_000_000);
    const h = new BackendHealth(clock);
    expect(h.state).toBe('unknown');
    expect(h.claim()).toBe(true);
    expect(h.failed('backend connection failed (ECONNREFUSED)')).toBe('down');
    expect(h).toMatchObject({ state: 'down', reason: 'backend connection failed (ECONNREFUSED)', downSince: 1_000_000 });
    expect(h.claim()).toBe(false);
    expect(h.retryInMs()).toBe(BACKOFF_MIN_MS);
    clock.advance(BACKOFF_MIN_MS);
    // one transaction may try it; the others skip it meanwhile
    expect(h.claim()).toBe(true);
    expect(h.claim()).toBe(false);
    expect(h.failed('backend connection timed out')).toBeUndefined(); // still down: not logged again
    expect(h.retryInMs()).toBe(2 * BACKOFF_MIN_MS);
    clock.advance(2 * BACKOFF_MIN_MS);
    expect(h.claim()).toBe(true);
    expect(h.succeeded()).toBe('recovered');
    expect(h).toMatchObject({ state: 'up', reason: undefined });
    expect(h.succeeded()).toBeUndefined();
    expect(h.claim()).toBe(true);
  });

  it('caps the back-off, and starts over after a success', () => {
    const clock = new ManualClock(0);
    const h = new BackendHealth(clock);
    for (let i = 0; i < 20; i++) h.failed('refused');
    expect(h.retryInMs()).toBe(BACKOFF_MAX_MS);
    clock.advance(BACKOFF_MAX_MS);
    expect(h.claim()).toBe(true);
    h.succeeded();
    expect(h.failed('refused')).toBe('down');
    expect(h.retryInMs()).toBe(BACKOFF_MIN_MS);
  });
});
