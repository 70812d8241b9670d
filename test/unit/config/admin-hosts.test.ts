/** `admin.hosts`: the names the admin listener answers to besides IP literals (config side). */
import { describe, expect, it } from 'vitest';
import { formatConfig, parseConfigText } from '../../../src/config/load.js';
import { problemsOf } from './load-helpers.js';

const FILE = '/etc/auditgate/test.yaml';
const RELAY = 'relay:\n  url: smtp://127.0.0.1:10025\n';

const problems = (text: string): readonly string[] => problemsOf(() => parseConfigText(text, FILE));

describe('admin.hosts', () => {
  it('defaults to empty; takes a list or one name, lower-cased, without a trailing dot', () => {
    expect(parseConfigText(RELAY, FILE).admin.hosts).toEqual([]);
    expect(parseConfigText(`${RELAY}admin: { hosts: [GW1.Example.NET, admin.internal., localhost] }\n`, FILE).admin.hosts).toEqual([
      'gw1.example.net',
      'admin.internal',
      'localhost',
    ]);
    expect(parseConfigText(`${RELAY}admin: { hosts: gw1.example.net }\n`, FILE).admin.hosts).toEqual(['gw1.example.net']);
  });

  it('is shown by formatConfig and loads back the same', () => {
    const config = parseConfigText(`${RELAY}admin: { hosts: [gw1.example.net] }\n`, FILE);
    expect(formatConfig(config)).toMatch(/^ {2}hosts: \[ gw1\.example\.net \]$/m);
    expect(formatConfig(parseConfigText(RELAY, FILE))).toMatch(/^ {2}hosts: \[\]$/m);
    expect(parseConfigText(formatConfig(config, { showSecrets: true }), FILE)).toEqual(config);
  });

  it('refuses ports, IP addresses, wildcards and garbage with file:line and key', () => {
    const text = `${RELAY}admin:
  hosts:
    - gw1.example.net:8025
    - 192.0.2.1
    - "[::1]"
    - "*.example.net"
    - "bad host"
    - 7
`;
    expect(problems(text)).toEqual([
      `${FILE}:5:7 admin.hosts[0]: "gw1.example.net:8025": list the name without a port (any port is accepted)`,
      `${FILE}:6:7 admin.hosts[1]: "192.0.2.1" is an IP address: IP addresses are always accepted in Host, list only names here`,
      `${FILE}:7:7 admin.hosts[2]: "[::1]" is an IP address: IP addresses are always accepted in Host, list only names here`,
      `${FILE}:8:7 admin.hosts[3]: "*.example.net" is not a host name such as "gateway.example.net" (no wildcards)`,
      `${FILE}:9:7 admin.hosts[4]: "bad host" is not a host name such as "gateway.example.net" (no wildcards)`,
      `${FILE}:10:7 admin.hosts[5]: expected a host name such as "gateway.example.net", got 7`,
    ]);
    expect(problems(`${RELAY}admin: { hosts: {a: 1} }\n`)[0]).toMatch(/admin\.hosts: expected a host name.*got a map/);
  });
});
