/**
 * The relay section: one URL or a list (smtp://, smtps://), strategy, and TLS whose PEM files are
 * read at load; every mistake is a problem at file:line and key. Also the server keys of the same
 * issue (max_transaction_time, proxy_header_wait).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.js';
import { formatConfig, parseConfigText } from '../../../src/config/load.js';
import { makeCa, makeCertificate, type TestCa, type TestCertificate } from '../../helpers/cert.js';

let dir: string;
let file: string;
let ca: TestCa;
let leaf: TestCertificate;
let other: TestCertificate;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-relay-config-'));
  file = path.join(dir, 'auditgate.yaml');
  ca = makeCa();
  leaf = ca.issue(['client.test']);
  other = makeCertificate('other.test');
  // relative paths in the config resolve against its directory
  fs.copyFileSync(ca.cert, path.join(dir, 'ca.pem'));
  fs.writeFileSync(path.join(dir, 'junk.pem'), 'not a certificate\n');
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  ca?.remove();
  other?.remove();
});

const load = (text: string) => parseConfigText(text, file);

function problems(text: string): readonly string[] {
  try {
    load(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, the config was accepted');
}

describe('relay.url', () => {
  it('takes one URL or a list of smtp:// and smtps:// backends, in order', () => {
    const one = load('relay: { url: "smtps://mx1.example.net:465" }\n');
    expect(one.relay).toEqual({
      kind: 'smtp',
      backends: [{ url: 'smtps://mx1.example.net:465', host: 'mx1.example.net', port: 465, implicit_tls: true }],
      strategy: 'failover',
      tls: { mode: 'none' },
      timeout: 60,
      pool_size: 4,
      chunking: true,
    });
    const list = load('relay:\n  url: ["smtp://10.0.0.2:25", "smtp://[2001:db8::25]:25/"]\n  strategy: round_robin\n');
    expect(list.relay).toMatchObject({
      kind: 'smtp',
      strategy: 'round_robin',
      backends: [
        { url: 'smtp://10.0.0.2:25', host: '10.0.0.2', port: 25, implicit_tls: false },
        { url: 'smtp://[2001:db8::25]:25', host: '2001:db8::25', port: 25, implicit_tls: false },
      ],
    });
  });

  it('names the entry that is wrong', () => {
    expect(problems('relay:\n  url:\n    - smtp://10.0.0.2:25\n    - smtp://10.0.0.3\n    - dir:./mail\n    - smtp://10.0.0.2:25\n  strategy: random\n')).toEqual([
      `${file}:4:7 relay.url[1]: relay "smtp://10.0.0.3": missing port in "10.0.0.3": write "10.0.0.3:2525"`,
      `${file}:7:3 relay.strategy: expected one of failover, round_robin, got "random"`,
    ]);
    expect(problems('relay:\n  url: [smtp://10.0.0.2:25, "dir:./mail"]\n')).toEqual([
      `${file}:2:29 relay.url[1]: a dir: relay writes files instead of relaying: list either one dir: or smtp:// / smtps:// backends`,
    ]);
    expect(problems('relay:\n  url: [smtp://10.0.0.2:25, smtp://10.0.0.3:25, "smtp://10.0.0.2:25/"]\n')).toEqual([
      `${file}:2:49 relay.url[2]: backend smtp://10.0.0.2:25 is listed twice (first as url[0])`,
    ]);
    expect(problems('relay: { url: [] }\n')).toEqual([`${file}:1:10 relay.url: needs at least one backend URL`]);
    expect(problems('relay: { url: "dir:./mail", strategy: failover }\n')).toEqual([
      `${file}:1:29 relay.strategy: strategy applies to smtp:// and smtps:// backends, not to a dir: relay`,
    ]);
  });
});

describe('relay.tls', () => {
  it('reads the PEM files at load, relative to the config file', () => {
    const config = load(`relay:
  url: smtp://mx.example.net:25
  tls: { mode: required, ca: ./ca.pem, servername: MX.Example.NET, cert: "${leaf.cert}", key: "${leaf.key}" }
`);
    expect(config.relay.kind === 'smtp' && config.relay.tls).toEqual({
      mode: 'required',
      ca: { path: path.join(dir, 'ca.pem'), pem: fs.readFileSync(ca.cert, 'utf8') },
      servername: 'mx.example.net',
      cert: { path: leaf.cert, pem: fs.readFileSync(leaf.cert, 'utf8') },
      key: { path: leaf.key, pem: fs.readFileSync(leaf.key, 'utf8') },
    });
  });

  it('a missing or wrong file, a lone certificate, a key of another certificate: each at its key', () => {
    expect(
      problems(`relay:
  url: smtp://mx.example.net:25
  tls:
    mode: required
    ca: ./missing.pem
    servername: 192.0.2.25
    cert: ./junk.pem
`),
    ).toEqual([
      `${file}:5:5 relay.tls.ca: cannot read ${path.join(dir, 'missing.pem')}: no such file`,
      `${file}:6:5 relay.tls.servername: "192.0.2.25" is an IP address: a server name is a host name (an address is checked as the URL's host)`,
      `${file}:7:5 relay.tls.cert: ${path.join(dir, 'junk.pem')} does not hold a PEM certificate ("-----BEGIN CERTIFICATE-----")`,
    ]);
    expect(problems(`relay:\n  url: smtp://mx.example.net:25\n  tls: { mode: opportunistic, cert: "${leaf.cert}" }\n`)).toEqual([
      `${file}:3:31 relay.tls.cert: a client certificate needs its key: set relay.tls.key too`,
    ]);
    const mismatch = problems(`relay:\n  url: smtp://mx.example.net:25\n  tls: { mode: opportunistic, cert: "${leaf.cert}", key: "${other.key}" }\n`);
    expect(mismatch).toHaveLength(1);
    expect(mismatch[0]!.startsWith(`${file}:3:77 relay.tls.key: ${other.key} is not the key of ${leaf.cert} (`)).toBe(true);
    expect(mismatch[0]).toMatch(/key values mismatch\)$/);
  });

  it('settings that would do nothing are refused', () => {
    expect(problems('relay:\n  url: smtp://mx.example.net:25\n  tls: { mode: opportunistic, ca: ./ca.pem }\n')).toEqual([
      `${file}:3:31 relay.tls.ca: ca is what a backend's certificate is checked against, which only mode: required does (mode is opportunistic)`,
    ]);
    expect(problems('relay:\n  url: smtp://mx.example.net:25\n  tls: { servername: mx.example.net }\n')).toEqual([
      `${file}:3:10 relay.tls.servername: TLS to the backends is off (mode: none and no smtps:// backend): set relay.tls.mode to opportunistic or required`,
    ]);
    expect(load('relay:\n  url: smtps://mx.example.net:465\n  tls: { servername: mx.example.net }\n').relay).toMatchObject({ tls: { mode: 'none', servername: 'mx.example.net' } });
    expect(problems('relay:\n  url: dir:./mail\n  tls: { mode: required }\n')).toEqual([
      `${file}:3:3 relay.tls: tls applies to smtp:// and smtps:// backends, not to a dir: relay`,
    ]);
  });

  it('formatConfig shows the list, the strategy and the TLS files by path, and loads back the same', () => {
    const config = load(`relay:
  url: ["smtp://10.0.0.2:25", "smtps://10.0.0.3:465"]
  strategy: round_robin
  tls: { mode: required, ca: ./ca.pem, servername: mx.example.net }
server:
  max_transaction_time: 2m
  proxy_header_wait: 0
`);
    const text = formatConfig(config);
    expect(text).toContain('url: [ smtp://10.0.0.2:25, smtps://10.0.0.3:465 ]');
    expect(text).toContain(`ca: ${path.join(dir, 'ca.pem')}`);
    expect(text).not.toContain('BEGIN CERTIFICATE');
    expect(text).toContain('max_transaction_time: 2m');
    expect(parseConfigText(text, file)).toEqual(config);
  });
});

describe('server.max_transaction_time and proxy_header_wait', () => {
  it('default to 10 minutes and 250 ms', () => {
    expect(load('relay: { url: dir:./mail }\n').server).toMatchObject({ max_transaction_time: 600, proxy_header_wait: 0.25 });
  });

  it('are durations; a transaction time of 0 is refused', () => {
    expect(problems('relay: { url: dir:./mail }\nserver: { max_transaction_time: 0, proxy_header_wait: soon }\n')).toEqual([
      `${file}:2:11 server.max_transaction_time: duration must be greater than 0, got 0`,
      `${file}:2:36 server.proxy_header_wait: invalid duration "soon": use seconds or a number with a unit: 500ms, 30s, 5m, 1h, 1d, 1w (combinations such as 1h30m work)`,
    ]);
  });
});
