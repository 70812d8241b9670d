import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { compilePolicies } from '../../../src/policy/compile.js';
import { applicable, evaluate, expandTemplate, secondsUntilFree } from '../../../src/policy/evaluate.js';
import { refusalReply, replyLine } from '../../../src/audit/replies.js';
import { parseClientAddress } from '../../../src/series/address.js';
import type { EventContext } from '../../../src/policy/evaluate.js';

/** An event context for a client address (parsed, as a front does once). */
const ev = (c: Omit<EventContext, 'client'>): EventContext => ({ ...c, client: parseClientAddress(c.ip) });

const cfg = parseConfigText(
  `relay: { url: "dir:/tmp/x" }
series:
  c: { type: cidr, interval: 60, windows: 4 }
  c6: { type: cidr_ipv6, interval: 60, windows: 4 }
  s: { type: string, interval: 60, windows: 4 }
policies:
  - { name: allow, on: connect, client: [10.0.0.0/8], action: accept }
  - { name: deny, on: connect, client: [192.0.2.128/25], action: reject }
  - { name: shadow-ip, on: connect, series: c, mask: 32, windows: [0, 0], above: 1, action: tempfail, mode: shadow }
  - { name: per-ip, on: connect, series: c, mask: 32, windows: [0, 3], above: 5, action: tempfail }
  - { name: per-64, on: connect, series: c6, mask: 64, above: 5, action: tarpit, delay: 2s }
  - { name: dom, on: mail, series: s, key: "{mail_from_domain}", above: 2, action: reject, reply: "554 5.7.1 go away" }
`,
  'policy-test.yaml',
);
const rules = compilePolicies(cfg);

describe('policy engine (pure)', () => {
  it('selects policies by client lists and family, with the keys they count', () => {
    const items = applicable(rules.connect, ev({ stage: 'connect', ip: '192.0.2.1'}));
    expect(items.map((i) => [i.policy.name, i.key])).toEqual([
      ['shadow-ip', '192.0.2.1/32'],
      ['per-ip', '192.0.2.1/32'],
    ]);
    expect(applicable(rules.connect, ev({ stage: 'connect', ip: '2001:db8::1'})).map((i) => i.policy.name)).toEqual(['per-64']);
    expect(applicable(rules.connect, ev({ stage: 'connect', ip: '10.9.8.7'})).map((i) => i.policy.name)[0]).toBe('allow');
  });

  it('first enforcing policy that fires decides; shadow firings are collected; above is strict', () => {
    const items = applicable(rules.connect, ev({ stage: 'connect', ip: '192.0.2.1'}));
    expect(evaluate(items, [1, 5])).toMatchObject({ verdict: 'continue', shadow: [] });
    const d = evaluate(items, [2, 6]);
    expect(d.verdict).toBe('tempfail');
    expect(d.fired).toMatchObject({ count: 6, key: '192.0.2.1/32' });
    expect(d.fired!.policy.name).toBe('per-ip');
    expect(d.shadow.map((f) => f.policy.name)).toEqual(['shadow-ip']);
    expect(evaluate(items, [undefined, undefined]).verdict).toBe('continue');
    const deny = applicable(rules.connect, ev({ stage: 'connect', ip: '192.0.2.200'}));
    expect(evaluate(deny, deny.map(() => 0)).verdict).toBe('reject');
  });

  it('expands key templates and skips policies whose key is missing', () => {
    expect(expandTemplate('{mail_from_domain}', ev({ stage: 'mail', ip: '1.2.3.4', mail_from_domain: 'ex.org'}))).toBe('ex.org');
    expect(applicable(rules.mail, ev({ stage: 'mail', ip: '1.2.3.4'}))).toEqual([]);
    // a client-controlled value too long to be a key is counted under its first 1024 characters
    const long = expandTemplate('{helo}', ev({ stage: 'helo', ip: '1.2.3.4', helo: 'h'.repeat(5000)}));
    expect(long).toBe('h'.repeat(1024));
  });

  it('tells when a count frees up', () => {
    // windows 0..3 hold 1, 0, 4, 3 (sum 8); above 5: after 1 boundary window 3 drops (sum 5 ≤ 5)
    expect(secondsUntilFree([1, 0, 4, 3], 0, 3, 5, 60, 10_000)).toBe(10);
    // above 0 needs all four to age out
    expect(secondsUntilFree([1, 0, 4, 3], 0, 3, 0, 60, 10_000)).toBe(190);
  });

  it('maps decisions to replies through one table, with the connection tag', () => {
    expect(replyLine(refusalReply('tempfail', 'connect', 'abc@gw'))).toBe('421 4.7.0 Too many connections from your network, try again later [abc@gw]');
    expect(replyLine(refusalReply('tempfail', 'rcpt', 'abc@gw', undefined, 90))).toBe('451 4.7.1 Rate limit exceeded, try again later (try again in 90s) [abc@gw]');
    const dom = rules.mail[0]!;
    expect(refusalReply('reject', 'mail', 'abc@gw', dom.reply)).toEqual({ code: 554, enhanced: '5.7.1', text: 'go away [abc@gw]' });
  });
});
