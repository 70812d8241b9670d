import { describe, expect, it } from 'vitest';
import { DecisionLog, prefixMatcher } from '../../../src/admin/decision-log.js';
import type { DecisionEvent } from '../../../src/events.js';

const ev = (client: string, at = 0): DecisionEvent => ({ at, cid: `c${at}`, front: 'smtp', stage: 'connect', client, action: 'tempfail', policy: 'flood' });

describe('DecisionLog', () => {
  it('numbers decisions and keeps only the newest `capacity`', () => {
    const log = new DecisionLog(3);
    for (let i = 1; i <= 5; i++) expect(log.push(ev('192.0.2.1', i)).id).toBe(i);
    expect(log.lastId()).toBe(5);
    expect(log.recent(10).map((d) => d.id)).toEqual([5, 4, 3]);
  });

  it('since(id): what came after, and how many the ring no longer holds', () => {
    const log = new DecisionLog(3);
    for (let i = 1; i <= 5; i++) log.push(ev('192.0.2.1', i));
    expect(log.since(4)).toEqual({ decisions: [expect.objectContaining({ id: 5 })], missed: 0 });
    expect(log.since(2).missed).toBe(0);
    const far = log.since(0);
    expect(far.decisions.map((d) => d.id)).toEqual([3, 4, 5]);
    expect(far.missed).toBe(2);
    expect(log.since(5)).toEqual({ decisions: [], missed: 0 });
  });

  it('recent(limit, prefix) keeps the clients inside the prefix, IPv4 and IPv6', () => {
    const log = new DecisionLog();
    for (const c of ['192.0.2.7', '198.51.100.1', '2001:db8:1::5', '2001:db8:2::5', '', '::ffff:192.0.2.9']) log.push(ev(c));
    expect(log.recent(10, '192.0.2.0/24').map((d) => d.event.client)).toEqual(['::ffff:192.0.2.9', '192.0.2.7']);
    expect(log.recent(10, '2001:db8:1::/48').map((d) => d.event.client)).toEqual(['2001:db8:1::5']);
    expect(log.recent(1, '2001:db8::/32').map((d) => d.event.client)).toEqual(['2001:db8:2::5']);
  });

  it('prefixMatcher: garbage prefixes and addresses match nothing', () => {
    expect(prefixMatcher('not a prefix')('192.0.2.1')).toBe(false);
    expect(prefixMatcher('192.0.2.0/24')('garbage')).toBe(false);
    expect(prefixMatcher('192.0.2.0/24')('2001:db8::1')).toBe(false);
    expect(prefixMatcher('0.0.0.0/0')('203.0.113.9')).toBe(true);
  });
});
