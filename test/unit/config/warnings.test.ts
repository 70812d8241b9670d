import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';

const DEFAULT_CONFIG = fileURLToPath(new URL('../../../config/auditgate.yaml', import.meta.url));

const base = (listen: string, extra = '') => `server:
  listen: [${listen}]
${extra}relay: { url: "smtp://127.0.0.1:10025" }
series:
  fails: { type: cidr, interval: 60, windows: 4 }
  fails6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64 }
policies:
  - { name: v4-only, on: rcpt, series: fails, mask: 32, above: 5, action: tempfail }
`;

describe('check-config warnings', () => {
  it('warns, with file:line and key, when IPv6 clients can connect but a stage limits IPv4 clients only', () => {
    const c = parseConfigText(base('"[::]:2525"'), 'w.yaml');
    expect(c.warnings).toHaveLength(1);
    expect(c.warnings[0]).toMatch(/^w\.yaml:8:\d+ policies\[0\]\.series: the rcpt stage limits IPv4 clients only \("v4-only" counts a cidr series.*server\.listen \[::\]:2525 accepts IPv6 clients/);
  });

  it('warns for PROXY or XCLIENT peers too: they can present IPv6 clients on an IPv4 listener', () => {
    expect(parseConfigText(base('"127.0.0.1:2525"', '  proxy_protocol: [127.0.0.1]\n'), 'w.yaml').warnings[0]).toMatch(/a PROXY header or XCLIENT can present IPv6 clients/);
  });

  it('stays quiet when the stage has an IPv6 twin, when shadowed, or when only IPv4 clients can come', () => {
    const twin = base('"[::]:2525"') + '  - { name: v6, on: rcpt, series: fails6, mask: 64, above: 5, action: tempfail }\n';
    expect(parseConfigText(twin, 'w.yaml').warnings).toEqual([]);
    expect(parseConfigText(base('"127.0.0.1:2525"'), 'w.yaml').warnings).toEqual([]);
    const shadow = base('"[::]:2525"').replace('action: tempfail }', 'action: tempfail, mode: shadow }');
    expect(parseConfigText(shadow, 'w.yaml').warnings).toEqual([]);
  });

  it('counts the sessions gauges by family: sessions is IPv4, sessions6 is IPv6', () => {
    const s = `server: { listen: ["[::]:2525"] }\nrelay: { url: "smtp://127.0.0.1:10025" }\npolicies:\n  - { name: s4, on: connect, series: sessions, mask: 24, above: 5, action: tempfail }\n`;
    expect(parseConfigText(s, 'w.yaml').warnings[0]).toMatch(/connect stage limits IPv4 clients only/);
    const both = `${s}  - { name: s6, on: connect, series: sessions6, mask: 64, above: 5, action: tempfail }\n`;
    expect(parseConfigText(both, 'w.yaml').warnings).toEqual([]);
    expect(() => parseConfigText(s.replace('mask: 24', 'mask: 64'), 'w.yaml')).toThrow(/mask 64 is out of range 0\.\.32 for the sessions gauge "sessions" \(IPv4 clients; "sessions6" counts IPv6 clients\)/);
  });

  it('the default config has an IPv6 twin for every limit: no warning with an IPv6 listener or PROXY peers', () => {
    const text = fs.readFileSync(DEFAULT_CONFIG, 'utf8').replace('listen: ["127.0.0.1:2525"]', 'listen: ["0.0.0.0:2525", "[::]:2525"]').replace('proxy_protocol: []', 'proxy_protocol: [10.0.0.1]');
    expect(text).toContain('[::]:2525"]');
    expect(parseConfigText(text, DEFAULT_CONFIG).warnings).toEqual([]);
  });

  it('does not warn about bans, protected networks, alerts or the journal with server.workers other than 1 (every worker applies them)', () => {
    const yaml = base('"127.0.0.1:2525"', '  workers: 2\n').replace('action: tempfail }', 'action: tempfail, ban: 10m }') + 'protected: [192.0.2.0/24]\njournal: { dir: ./j }\n';
    expect(parseConfigText(yaml, 'w.yaml').warnings).toEqual([]);
  });
});
