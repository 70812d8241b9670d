/** Config of the operator controls (SPEC §6): bans, protected networks, alerts. */
import { describe, expect, it } from 'vitest';
import { formatConfig, parseConfigText } from '../../../src/config/load.js';
import { problemsOf } from './load-helpers.js';

const FILE = '/etc/auditgate/controls.yaml';
const HEAD = `relay: { url: "smtp://127.0.0.1:10025" }
series:
  bad: { type: cidr, interval: 60, windows: 4 }
`;

const problems = (text: string): readonly string[] => problemsOf(() => parseConfigText(text, FILE));

describe('config: bans', () => {
  it('takes a duration or { for, factor, max }, with defaults', () => {
    const c = parseConfigText(
      `${HEAD}policies:
  - { name: a, on: rcpt, series: bad, mask: 24, windows: [0, 3], above: 5, action: tempfail, ban: 10m }
  - { name: b, on: rcpt, series: bad, mask: 24, above: 5, action: reject, ban: { for: 10m, factor: 3, max: 2h } }
  - { name: c, on: rcpt, series: bad, above: 5, action: tarpit, delay: 1s, ban: { for: 1m } }
  - { name: d, on: rcpt, series: bad, above: 5, action: tempfail, ban: { for: 2d } }
  - { name: e, on: rcpt, series: bad, above: 5, action: tempfail }
`,
      FILE,
    );
    expect(c.policies.map((p) => p.ban)).toEqual([
      { for: 600, factor: 1, max: 600 },
      { for: 600, factor: 3, max: 7200 },
      { for: 60, factor: 2, max: 86_400 },
      { for: 172_800, factor: 2, max: 172_800 },
      undefined,
    ]);
    const text = formatConfig(c);
    expect(text).toMatch(/ban:\n\s+for: 10m\n\s+factor: 3\n\s+max: 2h\n/);
    expect(parseConfigText(text, FILE).policies.map((p) => p.ban)).toEqual(c.policies.map((p) => p.ban));
  });

  it('refuses a negative or zero duration, a bad factor, max below for, unknown keys and a ban on accept: file:line and key', () => {
    const list = problems(`${HEAD}policies:
  - { name: a, on: rcpt, series: bad, above: 5, action: tempfail, ban: -5m }
  - { name: b, on: rcpt, series: bad, above: 5, action: tempfail, ban: 0 }
  - { name: c, on: rcpt, series: bad, above: 5, action: tempfail, ban: { for: 10m, factor: 0.5 } }
  - { name: d, on: rcpt, series: bad, above: 5, action: tempfail, ban: { for: 10m, max: 1m } }
  - { name: e, on: rcpt, series: bad, above: 5, action: tempfail, ban: { for: 10m, fo: 1 } }
  - { name: f, on: rcpt, series: bad, above: 5, action: tempfail, ban: { factor: 2 } }
  - { name: g, on: rcpt, client: [192.0.2.0/24], action: accept, ban: 1h }
`);
    expect(list).toEqual([
      expect.stringMatching(/^\/etc\/auditgate\/controls\.yaml:5:\d+ policies\[0\]\.ban: invalid duration "-5m"/),
      expect.stringMatching(/:6:\d+ policies\[1\]\.ban: duration must be greater than 0/),
      expect.stringMatching(/:7:\d+ policies\[2\]\.ban\.factor: must be at least 1, got 0\.5/),
      expect.stringMatching(/:8:\d+ policies\[3\]\.ban\.max: max \(60s\) must be at least for \(600s\)/),
      expect.stringMatching(/:9:\d+ policies\[4\]\.ban\.fo: unknown key "fo" \(did you mean "for"\?\)/),
      expect.stringMatching(/:10:\d+ policies\[5\]\.ban\.for: required key is missing/),
      expect.stringMatching(/:11:\d+ policies\[6\]\.ban: a ban goes with an action that refuses or slows the client/),
    ]);
  });
});

describe('config: protected networks', () => {
  it('normalizes the CIDRs and defaults to none', () => {
    expect(parseConfigText(HEAD, FILE).protected).toEqual([]);
    const c = parseConfigText(`${HEAD}protected: [10.0.0.0/8, "2001:DB8:FFFF::/48", 192.0.2.7]\n`, FILE);
    expect(c.protected).toEqual(['10.0.0.0/8', '2001:db8:ffff::/48', '192.0.2.7/32']);
    expect(formatConfig(c)).toContain('protected: [ 10.0.0.0/8, 2001:db8:ffff::/48, 192.0.2.7/32 ]');
  });

  it('refuses a bad CIDR at its line', () => {
    expect(problems(`${HEAD}protected: [10.0.0.0/8, 10.0.0.0/33]\n`)).toEqual([expect.stringMatching(/:4:\d+ protected\[1\]: "10\.0\.0\.0\/33" is not a valid address or CIDR/)]);
  });

  it('warns (check-config) when a refusing policy only matches protected networks', () => {
    const c = parseConfigText(
      `${HEAD}protected: [10.0.0.0/8, "fd00::/8"]
policies:
  - { name: internal, on: connect, client: [10.0.0.0/8], action: accept }
  - { name: deny-lab, on: connect, client: [10.1.0.0/16, "fd00:1::/32"], action: reject }
  - { name: deny-mixed, on: connect, client: [10.1.0.0/16, 192.0.2.0/24], action: reject }
  - { name: wider, on: connect, client: [10.0.0.0/7], action: reject }
`,
      FILE,
    );
    expect(c.warnings).toEqual([expect.stringMatching(/:7:\d+ policies\[1\]\.client: policy "deny-lab" only matches protected networks .*it can never reject or ban anyone/)]);
  });
});

describe('config: alerts', () => {
  const POLICY = `policies:
  - { name: dha-ban, on: rcpt, series: bad, mask: 24, above: 50, action: tempfail, ban: 10m }
`;

  it('parses entries with defaults, lower-cases header names and redacts their values when printed', () => {
    const c = parseConfigText(
      `${HEAD}${POLICY}alerts:
  - { name: ops, url: "http://127.0.0.1:9093/hook", policies: [dha-ban], min_interval: 5m, headers: { Authorization: "Bearer s3cret" } }
  - { name: all, url: "https://alerts.example.net/x" }
`,
      FILE,
    );
    expect(c.alerts).toEqual([
      { name: 'ops', url: 'http://127.0.0.1:9093/hook', policies: ['dha-ban'], min_interval: 300, headers: { authorization: 'Bearer s3cret' }, timeout: 5, retries: 3 },
      { name: 'all', url: 'https://alerts.example.net/x', min_interval: 300, headers: {}, timeout: 5, retries: 3 },
    ]);
    const text = formatConfig(c);
    expect(text).toContain('authorization: REDACTED');
    expect(text).not.toContain('s3cret');
  });

  it('refuses a URL that is not http(s), reserved or broken headers, unknown policies and duplicate names', () => {
    const list = problems(`${HEAD}${POLICY}alerts:
  - { name: ops, url: "ftp://127.0.0.1/hook" }
  - { name: ok, url: "http://127.0.0.1/", policies: [dha-bam, dha-ban] }
  - { name: ok, url: "http://127.0.0.1/" }
  - { name: x, url: "not a url", headers: { "Content-Type": "text/plain" } }
  - { name: y, url: "http://127.0.0.1/", retries: 11, min_interval: -1 }
`);
    expect(list).toEqual([
      expect.stringMatching(/:7:\d+ alerts\[0\]\.url: alerts are sent with HTTP POST: the URL must start with http:\/\/ or https:\/\/, got "ftp:/),
      expect.stringMatching(/:8:\d+ alerts\[1\]\.policies\[0\]: unknown policy "dha-bam" \(did you mean "dha-ban"\?\)/),
      expect.stringMatching(/:9:\d+ alerts\[2\]\.name: alert name "ok" is already used by alerts\[1\]/),
      expect.stringMatching(/:10:\d+ alerts\[3\]\.url: expected an http:\/\/ or https:\/\/ URL/),
      expect.stringMatching(/:10:\d+ alerts\[3\]\.headers: header "Content-Type" is set by the alert sender itself/),
      expect.stringMatching(/:11:\d+ alerts\[4\]\.retries: must be at most 10, got 11/),
      expect.stringMatching(/:11:\d+ alerts\[4\]\.min_interval: invalid duration -1/),
    ]);
  });
});
