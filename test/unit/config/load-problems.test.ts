import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.js';
import { loadConfig, parseConfigText } from '../../../src/config/load.js';
import { FIXTURES, fixture, FILE, RELAY, problemsOf, problems } from './load-helpers.js';

describe('problems name the file, line, column and key', () => {
  it('reads server.workers: a number of processes or auto, 1 by default', () => {
    expect(parseConfigText(RELAY, FILE).server.workers).toBe(1);
    expect(parseConfigText(`server:\n  workers: 3\n${RELAY}`, FILE).server.workers).toBe(3);
    expect(parseConfigText(`server:\n  workers: auto\n${RELAY}`, FILE).server.workers).toBe('auto');
    expect(problemsOf(() => parseConfigText(`server:\n  workers: many\n${RELAY}`, FILE))).toEqual([
      `${FILE}:2:3 server.workers: a number of processes from 1 to 1024, or "auto" (one per core)`,
    ]);
    expect(problemsOf(() => parseConfigText(`server:\n  workers: 0\n${RELAY}`, FILE))[0]).toMatch(/:2:3 server\.workers: /);
  });

  it('reports a mask out of range for the series type', () => {
    expect(problemsOf(() => loadConfig(fixture('bad-mask.yaml')))).toEqual([
      `${fixture('bad-mask.yaml')}:14:5 policies[2].mask: mask 40 is out of range 0..32 for cidr series "connections"`,
    ]);
  });

  it('reports every problem of a file in one error, in file order', () => {
    const f = fixture('many-problems.yaml');
    let error: unknown;
    try {
      loadConfig(f);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const err = error as ConfigError;
    expect(err.code).toBe('AG_CONFIG');
    expect(err.problems.map((p) => p.replace(/:.*?(?=:\d+:\d+ )/, '').replace(f, 'F'))).toEqual([
      'F:3:12 server.listen[0]: missing port in "127.0.0.1": write "127.0.0.1:2525"',
      expect.stringMatching(/^F:4:3 server\.idle_timeout: invalid duration "5x": use seconds or a number with a unit/),
      expect.stringMatching(/^F:5:20 server\.proxy_protocol\[0\]: "10\.0\.0\.0\/33" is not a valid address or CIDR/),
      'F:6:3 server.max_clients: expected a number, got "many"',
      'F:8:3 relay.url: required key is missing',
      'F:11:57 series.connections.store_prefix: store_prefix applies to cidr_ipv6 series only, "connections" is cidr',
      expect.stringMatching(/^F:14:42 record\[0\]\.series\[1\]: unknown series "conections" \(did you mean "connections"\?\)/),
      expect.stringMatching(/^F:15:5 record\[1\]\.key: series "senders" is a string series: this rule needs a key/),
      'F:18:5 policies[0].delay: a tarpit policy needs a delay, e.g. delay: 5s',
      'F:21:5 policies[0].windows: window range [0, 4] is out of range 0..3 for series "connections" (4 windows)',
      'F:24:5 policies[1].name: policy name "burst" is already used by policies[0]',
      expect.stringMatching(/^F:30:5 policies\[1\]\.reply: a tempfail reply must start with a 4xx code/),
      expect.stringMatching(/^F:31:5 policies\[1\]\.colour: unknown key "colour"/),
    ]);
    expect(err.message.split('\n')[0]).toBe(`invalid configuration ${f}:`);
    expect(err.message).toContain(`${f}:21:5 policies[0].windows`);
  });

  it('gives the line of a YAML syntax error', () => {
    const [first, ...rest] = problemsOf(() => loadConfig(fixture('syntax-error.yaml')));
    expect(rest).toEqual([]);
    expect(first).toMatch(new RegExp(`^${fixture('syntax-error.yaml').replace(/[.]/g, '\\.')}:7:3 YAML: Flow sequence`));
  });

  it('reports duplicate keys as YAML problems', () => {
    expect(problems(`${RELAY}log: { level: info }\nlog: { level: debug }\n`)).toEqual([
      `${FILE}:4:1 YAML: Map keys must be unique`,
    ]);
  });

  it('rejects unknown keys at the key, with a suggestion', () => {
    expect(problems(`${RELAY}server:\n  hostname: mx.test\n  max_client: 10\nlogging: {}\n`)).toEqual([
      `${FILE}:5:3 server.max_client: unknown key "max_client" (did you mean "max_clients"?)`,
      `${FILE}:6:1 logging: unknown key "logging" (did you mean "log"?)`,
    ]);
    expect(problems(`${RELAY}series:\n  a: { type: cidr, interval: 60, windows: 2, color: red }\n`)).toEqual([
      `${FILE}:4:46 series.a.color: unknown key "color"; known keys: type, interval, windows, persist, serialize, replicate, store_prefix, max_keys, distinct`,
    ]);
  });

  it('points a missing key at the enclosing map', () => {
    expect(problems(`server:\n  hostname: mx.test\nrelay:\n  timeout: 5s\n  pool_size: 2\n`)).toEqual([
      `${FILE}:4:3 relay.url: required key is missing`,
    ]);
    expect(problems(`server: {}\n`)).toEqual([
      `${FILE}:1:1 relay: required key is missing: the SMTP proxy (server.listen) relays accepted mail to it, e.g. relay: { url: "smtp://127.0.0.1:10025" }; leave it out only with server.listen: []`,
    ]);
    expect(problems(`${RELAY}series:\n  a:\n    type: cidr\n    windows: 2\n`)).toEqual([
      `${FILE}:5:5 series.a.interval: required key is missing`,
    ]);
  });

  it('rejects a bad CIDR with its location', () => {
    expect(problems(`${RELAY}policies:\n  - name: trusted\n    on: connect\n    client: [10.0.0.0/8, 300.1.2.3]\n    action: accept\n`)).toEqual([
      `${FILE}:6:26 policies[0].client[1]: "300.1.2.3" is not a valid address or CIDR (e.g. "192.0.2.0/24", "2001:db8::/32", "192.0.2.7")`,
    ]);
    expect(problems(`${RELAY}server:\n  xclient: 10.0.0.0/99\n`)).toEqual([
      `${FILE}:4:3 server.xclient: "10.0.0.0/99" is not a valid address or CIDR (e.g. "192.0.2.0/24", "2001:db8::/32", "192.0.2.7")`,
    ]);
  });

  it('rejects a bad duration and a bad size', () => {
    expect(problems(`${RELAY}series:\n  a: { type: cidr, interval: 5x, windows: 2 }\n`)).toEqual([
      `${FILE}:4:20 series.a.interval: invalid duration "5x": use seconds or a number with a unit: 500ms, 30s, 5m, 1h, 1d, 1w (combinations such as 1h30m work)`,
    ]);
    expect(problems(`${RELAY}server: { max_message_size: 25 MiBs }\n`)).toEqual([
      `${FILE}:3:11 server.max_message_size: invalid size "25 MiBs": use bytes or a number with a unit: 512B, 10KB, 25MB, 1GB (units are powers of 1024)`,
    ]);
  });

  it('checks types and enums', () => {
    expect(
      problems(`${RELAY}log: { level: loud }\nseries:\n  a: { type: ipv4, interval: 60, windows: 2.5, persist: yes }\n`),
    ).toEqual([
      `${FILE}:3:8 log.level: expected one of trace, debug, info, warn, error, fatal, silent, got "loud"`,
      `${FILE}:5:8 series.a.type: expected one of cidr, cidr_ipv6, string, got "ipv4"`,
      `${FILE}:5:34 series.a.windows: expected an integer, got 2.5`,
      `${FILE}:5:48 series.a.persist: expected true or false, got "yes"`,
    ]);
  });

  it('checks series names, reserved names and windows', () => {
    const text = `${RELAY}monitors: ["300,6"]
series:
  "bad name": { type: cidr, interval: 60, windows: 2 }
  "connections:300,6": { type: cidr, interval: 60, windows: 2 }
  sessions: { type: cidr, interval: 60, windows: 2 }
  big: { type: cidr, interval: 60, windows: 2000 }
  v6: { type: cidr_ipv6, interval: 60, windows: 2, store_prefix: 129 }
`;
    expect(problems(text)).toEqual([
      `${FILE}:5:3 series["bad name"]: series name "bad name" must be 1-128 letters, digits, _ . : , -`,
      `${FILE}:6:3 series["connections:300,6"]: series name "connections:300,6" is reserved for a built-in series`,
      `${FILE}:7:3 series.sessions: series name "sessions" is reserved for a built-in series`,
      `${FILE}:8:36 series.big.windows: must be at most 1024, got 2000`,
      `${FILE}:9:52 series.v6.store_prefix: must be at most 128, got 129`,
    ]);
  });

  it('checks series references in record rules and policies', () => {
    const text = `${RELAY}series:
  ips: { type: cidr, interval: 60, windows: 4 }
  helos: { type: string, interval: 60, windows: 4 }
record:
  - { on: connect, series: [ips, nope] }
  - { on: connect, series: sessions }
  - { on: helo, series: ips, key: "{helo}" }
policies:
  - { name: a, on: connect, series: "connections:300,6", above: 1, action: tempfail }
  - { name: b, on: helo, series: helos, key: "{helo}", mask: 24, above: 1, action: tempfail }
  - { name: c, on: helo, series: helos, above: 1, action: tempfail }
  - { name: d, on: connect, series: sessions, key: "{ip}", above: 1, action: tempfail }
`;
    expect(problems(text)).toEqual([
      `${FILE}:7:34 record[0].series[1]: unknown series "nope"; define it under series:`,
      `${FILE}:8:20 record[1].series: "sessions" is the built-in concurrent-session count; a record rule cannot add to it`,
      `${FILE}:9:30 record[2].key: series "ips" is cidr: its key is the client address, so key must be "{ip}" or left out`,
      `${FILE}:11:29 policies[0].series: unknown series "connections:300,6"; define it under series:`,
      `${FILE}:12:56 policies[1].mask: mask does not apply to string series "helos"`,
      `${FILE}:13:5 policies[2].key: series "helos" is a string series: this policy needs a key, e.g. key: "{mail_from_domain}"`,
      `${FILE}:14:47 policies[3].key: series "sessions" is keyed by the client address: key must be "{ip}" or left out`,
    ]);
  });

  it('checks masks and window ranges against the series', () => {
    const text = `${RELAY}monitors: ["300,6"]
series:
  v6: { type: cidr_ipv6, interval: 60, windows: 4 }
policies:
  - { name: a, on: connect, series: v6, mask: 129, above: 1, action: tempfail }
  - { name: b, on: connect, series: v6, mask: 64, windows: [3, 1], above: 1, action: tempfail }
  - { name: c, on: connect, series: "connections:300,6", mask: 33, windows: [0, 6], above: 1, action: tempfail }
  - { name: d, on: connect, series: sessions, mask: 33, windows: [0, 99], above: 1, action: tempfail }
  - { name: e, on: connect, series: v6, windows: 3, above: 1, action: tempfail }
`;
    expect(problems(text)).toEqual([
      `${FILE}:7:41 policies[0].mask: mask 129 is out of range 0..128 for cidr_ipv6 series "v6"`,
      `${FILE}:8:51 policies[1].windows: window range [3, 1] starts after it ends`,
      `${FILE}:9:58 policies[2].mask: mask 33 is out of range 0..32 for cidr series "connections:300,6"`,
      `${FILE}:9:68 policies[2].windows: window range [0, 6] is out of range 0..5 for series "connections:300,6" (6 windows)`,
      `${FILE}:10:47 policies[3].mask: mask 33 is out of range 0..32 for the sessions gauge "sessions" (IPv4 clients; "sessions6" counts IPv6 clients)`,
      `${FILE}:11:41 policies[4].windows: expected a window range [start, end] such as [0, 3], got 3`,
    ]);
  });

  it('checks thresholds, actions, delays and replies', () => {
    const text = `${RELAY}series:
  ips: { type: cidr, interval: 60, windows: 4 }
policies:
  - { name: a, on: connect, series: ips, action: tempfail }
  - { name: b, on: connect, series: ips, above: 1, action: tarpit }
  - { name: c, on: connect, series: ips, above: 1, action: tempfail, reply: "550 5.7.1 no" }
  - { name: d, on: connect, series: ips, above: 1, action: reject, reply: "451 4.7.1 later" }
  - { name: e, on: connect, series: ips, above: 1, action: reject, reply: "554 4.7.1 mixed" }
  - { name: f, on: connect, series: ips, above: 1, action: reject, reply: "no code" }
  - { name: g, on: connect, above: 1, mask: 24, action: accept, delay: 1s }
  - { name: h, on: connect, client: [], action: accept, reply: "250 ok" }
`;
    expect(problems(text)).toEqual([
      `${FILE}:6:5 policies[0].above: policy "a" counts series "ips" but has no "above" threshold`,
      `${FILE}:7:5 policies[1].delay: a tarpit policy needs a delay, e.g. delay: 5s`,
      `${FILE}:8:70 policies[2].reply: a tempfail reply must start with a 4xx code, e.g. "451 4.7.1 ...", got "550 5.7.1 no"`,
      `${FILE}:9:68 policies[3].reply: a reject reply must start with a 5xx code, e.g. "550 5.7.1 ...", got "451 4.7.1 later"`,
      `${FILE}:10:68 policies[4].reply: reply "554 4.7.1 mixed": enhanced status 4.x.x does not match reply code 554`,
      `${FILE}:11:68 policies[5].reply: reply "no code" must start with a 3-digit SMTP code, e.g. "451 4.7.1 try again later"`,
      `${FILE}:12:29 policies[6].above: above applies only to a policy with a series`,
      `${FILE}:12:39 policies[6].mask: mask applies only to a policy with a series`,
      `${FILE}:12:65 policies[6].delay: delay applies only to action tarpit, this policy's action is accept`,
      `${FILE}:13:29 policies[7].client: an empty list matches nobody: list at least one CIDR or leave the key out`,
    ]);
  });

  it('checks key templates and the stage they are used at', () => {
    const text = `${RELAY}series:
  s: { type: string, interval: 60, windows: 4 }
record:
  - { on: mail, series: s, key: "{sender}" }
  - { on: connect, series: s, key: "{mail_from_domain}" }
  - { on: rcpt, series: s, key: "{rcpt_domain}|{ip" }
policies:
  - { name: a, on: helo, series: s, key: "{rcpt}", above: 1, action: tempfail }
`;
    expect(problems(text)).toEqual([
      `${FILE}:6:28 record[0].key: unknown placeholder {sender} in key template "{sender}"; known: {ip} {net} {helo} {mail_from} {mail_from_domain} {rcpt} {rcpt_domain} {auth_user}`,
      `${FILE}:7:31 record[1].key: {mail_from_domain} has no value at stage "connect"; available there: {ip} {net}`,
      `${FILE}:8:28 record[2].key: unbalanced brace in key template "{rcpt_domain}|{ip"`,
      `${FILE}:10:37 policies[0].key: {rcpt} has no value at stage "helo"; available there: {ip} {net} {helo}`,
    ]);
  });

  it('checks the relay URL, listen addresses, monitors, store and admin', () => {
    const text = `relay: { url: "smtp://backend.test" }
server:
  listen: ["2525", "::1", "[::1]:2525"]
monitors: ["300,6", "5m,6", "300"]
store: { redis: "http://127.0.0.1:6379" }
admin: { listen: "0.0.0.0:8025" }
`;
    expect(problems(text)).toEqual([
      `${FILE}:1:10 relay.url: relay "smtp://backend.test": missing port in "backend.test": write "backend.test:2525"`,
      `${FILE}:3:12 server.listen[0]: missing host in "2525": write "0.0.0.0:2525" or "127.0.0.1:2525"`,
      `${FILE}:3:20 server.listen[1]: missing port in "::1": an IPv6 address goes in brackets, e.g. "[::1]:2525"`,
      `${FILE}:4:29 monitors[2]: expected "interval,windows" such as "300,6", got "300"`,
      `${FILE}:5:10 store.redis: expected a Redis URL such as "redis://127.0.0.1:6379", got "http://127.0.0.1:6379"`,
      `${FILE}:6:10 admin.listen: the admin listener on 0.0.0.0:8025 is not loopback: set admin.token`,
    ]);
    expect(problems(`relay: { url: "ftp://x" }\nmonitors: ["300,6", "5m,6"]\n`)).toEqual([
      `${FILE}:1:10 relay.url: expected "smtp://host:port", "smtps://host:port" (IPv6 host in brackets) or "dir:PATH", got "ftp://x"`,
      `${FILE}:2:21 monitors[1]: monitor "300,6" is listed twice (first as monitors[0])`,
    ]);
  });

  it('requires a shared store for replicated series', () => {
    expect(problems(`${RELAY}series:\n  c: { type: cidr, interval: 60, windows: 2, replicate: cluster }\n`)).toEqual([
      `${FILE}:4:46 series.c.replicate: replicate: cluster needs a shared store: set store.redis`,
    ]);
  });

  it('reports a document that is not a map, and a file that cannot be read', () => {
    expect(problems('')).toEqual([`${FILE}:1:1 the configuration must be a map of keys (server, relay, series, …), got an empty value`]);
    expect(problems('- a\n- b\n')).toEqual([`${FILE}:1:1 the configuration must be a map of keys (server, relay, series, …), got a list`]);
    const missing = path.join(FIXTURES, 'does-not-exist.yaml');
    expect(problemsOf(() => loadConfig(missing))).toEqual([`${missing}: cannot read the configuration: ENOENT`]);
  });
});
