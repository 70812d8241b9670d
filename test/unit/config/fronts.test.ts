/**
 * Config of the MTA fronts (milter, policy_service): listen addresses (TCP and unix:), bounds
 * and defaults, server.listen: [] without a relay, "at least one front", the effective config.
 */
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { formatConfig, parseConfigText } from '../../../src/config/load.js';
import { problemsOf } from './load-helpers.js';

const FILE = '/etc/auditgate/fronts.yaml';

const problems = (text: string): readonly string[] => problemsOf(() => parseConfigText(text, FILE));

describe('milter and policy_service config', () => {
  it('parses TCP and unix: listen addresses, with defaults for the bounds', () => {
    const c = parseConfigText(
      `server: { listen: [] }
milter:
  listen: ["127.0.0.1:8891", "[::1]:8891", "unix:/run/auditgate/milter.sock", "unix:run/m.sock"]
policy_service: { listen: "127.0.0.1:10040", max_connections: 50, idle_timeout: 2m }
`,
      FILE,
    );
    expect(c.milter).toEqual({
      listen: [{ host: '127.0.0.1', port: 8891 }, { host: '::1', port: 8891 }, { path: '/run/auditgate/milter.sock' }, { path: '/etc/auditgate/run/m.sock' }],
      max_connections: 1000,
      idle_timeout: 600,
    });
    expect(c.policy_service).toEqual({ listen: [{ host: '127.0.0.1', port: 10040 }], max_connections: 50, idle_timeout: 120 });
    expect(c.relay).toBeUndefined();
    expect(c.server.listen).toEqual([]);
  });

  it('leaves a front out when its section is absent', () => {
    const c = parseConfigText('relay: { url: "smtp://127.0.0.1:10025" }\n', FILE);
    expect(c.milter).toBeUndefined();
    expect(c.policy_service).toBeUndefined();
  });

  it('reports bad listen addresses and bounds with file:line and key', () => {
    expect(
      problems(`server: { listen: [] }
milter: { listen: ["8891", "unix:"], max_connections: 0 }
policy_service: { listen: [], idle_timeout: 0, extra: 1 }
`),
    ).toEqual([
      `${FILE}:2:20 milter.listen[0]: missing host in "8891": write "0.0.0.0:8891" or "127.0.0.1:8891" (or "unix:/path" for a unix-domain socket)`,
      `${FILE}:2:28 milter.listen[1]: "unix:" needs a socket path, e.g. "unix:/run/auditgate/milter.sock"`,
      `${FILE}:2:38 milter.max_connections: must be at least 1, got 0`,
      `${FILE}:3:19 policy_service.listen: needs at least one "host:port" or "unix:/path" (leave the section out to run no such front)`,
      `${FILE}:3:31 policy_service.idle_timeout: duration must be greater than 0, got 0`,
      `${FILE}:3:48 policy_service.extra: unknown key "extra"; known keys: listen, max_connections, idle_timeout`,
    ]);
  });

  it('refuses a unix socket path longer than the system allows', () => {
    const long = `/tmp/${'x'.repeat(110)}.sock`;
    expect(problems(`server: { listen: [] }\nmilter: { listen: ["unix:${long}"] }\n`)).toEqual([
      `${FILE}:2:20 milter.listen[0]: socket path "${long.slice(0, 57)}..." is ${long.length} bytes: a unix socket path may have at most 107`,
    ]);
  });

  it('needs at least one front, and a relay only for the SMTP proxy', () => {
    expect(problems('server: { listen: [] }\n')).toEqual([
      `${FILE}:1:11 server.listen: no front is configured: server.listen is empty and neither milter.listen nor policy_service.listen is set`,
    ]);
    expect(problems('milter: { listen: ["127.0.0.1:8891"] }\n')).toEqual([
      `${FILE}:1:1 relay: required key is missing: the SMTP proxy (server.listen) relays accepted mail to it, e.g. relay: { url: "smtp://127.0.0.1:10025" }; leave it out only with server.listen: []`,
    ]);
    // an invalid relay is reported once, as itself
    expect(problems('relay: { url: "ftp://x" }\nmilter: { listen: ["127.0.0.1:8891"] }\n')).toEqual([
      `${FILE}:1:10 relay.url: expected "smtp://host:port", "smtps://host:port" (IPv6 host in brackets) or "dir:PATH", got "ftp://x"`,
    ]);
    // worker processes run the MTA fronts too
    const workers = parseConfigText('server: { listen: [], workers: 2 }\npolicy_service: { listen: ["127.0.0.1:10040"] }\nmilter: { listen: ["unix:/tmp/m.sock"] }\n', FILE);
    expect([workers.server.workers, workers.milter?.listen, workers.policy_service?.listen]).toEqual([2, [{ path: '/tmp/m.sock' }], [{ host: '127.0.0.1', port: 10040 }]]);
    // proxy and milter in one process
    const both = parseConfigText('relay: { url: "smtp://127.0.0.1:10025" }\nmilter: { listen: ["127.0.0.1:8891"] }\n', FILE);
    expect(both.server.listen).toEqual([{ host: '127.0.0.1', port: 2525 }]);
    expect(both.milter?.listen).toEqual([{ host: '127.0.0.1', port: 8891 }]);
  });

  it('warns about IPv4-only stages when an MTA front serves the clients', () => {
    const c = parseConfigText(
      `server: { listen: [] }
policy_service: { listen: ["127.0.0.1:10040"] }
series: { c: { type: cidr, interval: 60, windows: 2 } }
policies: [{ name: v4, on: rcpt, series: c, above: 3, action: tempfail }]
`,
      FILE,
    );
    expect(c.warnings).toEqual([expect.stringMatching(/^\/etc\/auditgate\/fronts\.yaml:4:\d+ policies\[0\]\.series: the rcpt stage limits IPv4 clients only .* the policy_service front serves whatever clients the MTA has, IPv6 included/)]);
  });

  it('prints the fronts in the effective config, which loads again to the same', () => {
    const c = parseConfigText(
      `server: { listen: [] }
milter: { listen: ["unix:/run/m.sock", "[::1]:8891"], idle_timeout: 90 }
policy_service: { listen: ["127.0.0.1:10040"] }
`,
      FILE,
    );
    const text = formatConfig(c);
    const doc = parseYaml(text) as Record<string, unknown>;
    expect(doc.milter).toEqual({ listen: ['unix:/run/m.sock', '[::1]:8891'], max_connections: 1000, idle_timeout: '90s' });
    expect(doc.policy_service).toEqual({ listen: ['127.0.0.1:10040'], max_connections: 1000, idle_timeout: '10m' });
    expect(doc).not.toHaveProperty('relay');
    const again = parseConfigText(text, FILE);
    expect(again.milter).toEqual(c.milter);
    expect(again.policy_service).toEqual(c.policy_service);
    expect(again.relay).toBeUndefined();
  });
});
