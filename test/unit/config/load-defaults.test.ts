import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { formatConfig, loadConfig, parseConfigText } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';
import { ROOT, FIXTURES, DEFAULT_CONFIG, fixture, FILE, RELAY } from './load-helpers.js';

describe('the default config', () => {
  const config = loadConfig(DEFAULT_CONFIG);

  it('loads and normalizes durations, sizes and addresses', () => {
    expect(config.file).toBe(DEFAULT_CONFIG);
    expect(config.server.hostname).toBe('mx.auditgate.test');
    expect(config.server.listen).toEqual([{ host: '127.0.0.1', port: 2525 }]);
    expect(config.server.max_message_size).toBe(26_214_400);
    expect(config.server.idle_timeout).toBe(300);
    expect(config.server.max_clients).toBe(2000);
    expect(config.relay?.timeout).toBe(60);
    expect(config.persist_interval).toBe(5);
    expect(config.log_retention).toBe(7 * 86_400);
    expect(config.store).toEqual({ on_error: 'local', max_delay: 1, max_pending: 100 });
    expect(config.admin).toEqual({ listen: { host: '127.0.0.1', port: 8025 }, hosts: [] });
    expect(config.log.level).toBe('info');
  });

  it('resolves paths relative to the config file directory', () => {
    expect(config.relay).toMatchObject({ kind: 'dir', dir: path.join(ROOT, 'var/mail'), url: `dir:${path.join(ROOT, 'var/mail')}` });
    expect(config.state_dir).toBe(path.join(ROOT, 'var/state'));
    expect(config.log_dir).toBe(path.join(ROOT, 'var/series-log'));
  });

  it('parses monitors, series, record rules and policies', () => {
    expect(config.monitors).toEqual([
      { interval: 300, windows: 6, text: '300,6' },
      { interval: 1800, windows: 4, text: '1800,4' },
    ]);
    expect(config.series.connections).toEqual({
      name: 'connections',
      type: 'cidr',
      interval: 900,
      windows: 4,
      persist: true,
      serialize: false,
      replicate: 'none',
      distinct: false,
    });
    expect(config.series.connections6).toMatchObject({ type: 'cidr_ipv6', store_prefix: 64, persist: false });
    expect(Object.keys(config.series)).toEqual([
      'connections',
      'connections6',
      'invalid_recipients',
      'invalid_recipients6',
      'mailfrom_domain',
      'auth_failures',
      'auth_failures6',
      'rcpts_per_net',
      'bytes_per_ip',
      'rcpt_distinct',
      'auth_user_nets',
      'sender_domains6',
    ]);
    expect(config.series.sender_domains6).toMatchObject({ type: 'cidr_ipv6', store_prefix: 64, distinct: true });
    expect(config.record).toEqual([
      { on: 'connect', series: ['connections', 'connections6'] },
      { on: 'rcpt_rejected', series: ['invalid_recipients', 'invalid_recipients6'] },
      { on: 'mail', series: ['mailfrom_domain'], key: '{mail_from_domain}' },
      { on: 'auth_fail', series: ['auth_failures', 'auth_failures6'] },
      { on: 'data', series: ['rcpts_per_net'], count: 'rcpts' },
      { on: 'data', series: ['bytes_per_ip'], count: 'bytes' },
      { on: 'rcpt', series: ['rcpt_distinct'], value: '{rcpt}' },
      { on: 'mail', series: ['auth_user_nets'], key: '{auth_user}', value: '{net}' },
      { on: 'mail', series: ['sender_domains6'], value: '{mail_from_domain}' },
    ]);
    expect(config.policies.map((p) => p.name)).toEqual([
      'internal',
      'conn-per-ip',
      'conn-per-64',
      'conn-per-24',
      'conn-per-48',
      'burst',
      'burst6',
      'too-many-sessions',
      'too-many-sessions6',
      'dha',
      'dha6',
      'auth-guessing',
      'auth-guessing6',
      'sender-domain-flood',
      'rcpts-per-24',
      'bytes-per-ip',
      'harvest-per-24',
      'auth-user-nets',
      'sender-domains-per-64',
    ]);
    expect(config.warnings).toEqual([]);
    const byName = Object.fromEntries(config.policies.map((p) => [p.name, p]));
    expect(byName.internal).toEqual({
      name: 'internal',
      on: 'connect',
      client: ['10.0.0.0/8', 'fd00::/8'],
      action: 'accept',
      windows: [0, 0],
      mode: 'enforce',
    });
    expect(byName['conn-per-ip']).toMatchObject({ series: 'connections', mask: 32, windows: [0, 3], above: 100, action: 'tempfail' });
    expect(byName['conn-per-ip']!.reply).toMatch(/^421 4\.7\.0 /);
    expect(byName.burst).toMatchObject({ action: 'tarpit', delay: 5, windows: [0, 0], above: 20 });
    expect(byName['too-many-sessions']).toMatchObject({ series: 'sessions', mask: 24, above: 50, windows: [0, 0] });
    expect(byName.dha).toMatchObject({ on: 'rcpt', series: 'invalid_recipients', above: 50, action: 'tempfail' });
    expect(byName['sender-domain-flood']).toMatchObject({ on: 'mail', key: '{mail_from_domain}', above: 500, mode: 'shadow' });
    // No loopback bypass: newcomers testing from 127.0.0.1 must see the limits.
    expect(config.policies.some((p) => p.client?.some((c) => c.startsWith('127.')))).toBe(false);
  });

  it('is deeply frozen', () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.server.listen[0])).toBe(true);
    expect(Object.isFrozen(config.policies[1]!.windows)).toBe(true);
    expect(Object.isFrozen(config.series.connections)).toBe(true);
    expect(() => {
      (config.server as { max_clients: number }).max_clients = 1;
    }).toThrow(TypeError);
    expect(() => (config.policies as unknown[]).push({})).toThrow(TypeError);
    expect(config.server.max_clients).toBe(2000);
  });

  it('formats to YAML that loads back to the same config', () => {
    const text = formatConfig(config);
    expect(text).toContain('max_message_size: 25MB');
    expect(text).toContain('interval: 15m');
    expect(text).toContain('monitors: [ "300,6", "1800,4" ]');
    expect(parseConfigText(text, config.file)).toEqual(config);
  });
});

describe('defaults and normalization', () => {
  it('fills every default for a minimal config', () => {
    const config = loadConfig(fixture('minimal.yaml'));
    expect(config.relay).toEqual({
      kind: 'smtp',
      backends: [{ url: 'smtp://[2001:db8::25]:10025', host: '2001:db8::25', port: 10025, implicit_tls: false }],
      strategy: 'failover',
      tls: { mode: 'none' },
      timeout: 60,
      pool_size: 4,
      chunking: true,
    });
    expect(config.server).toMatchObject({
      listen: [{ host: '127.0.0.1', port: 2525 }],
      proxy_protocol: [],
      xclient: [],
      max_clients: 2000,
      max_message_size: 25 * 1024 * 1024,
      max_recipients: 100,
      idle_timeout: 300,
      max_transaction_time: 600,
      max_line_length: 2048,
    });
    expect(config.server.tls).toBeUndefined();
    expect(config.state_dir).toBe(path.join(FIXTURES, 'var/state'));
    expect(config.log_dir).toBe(path.join(FIXTURES, 'var/series-log'));
    expect(config.monitors).toEqual([]);
    expect(config.series).toEqual({});
    expect(config.record).toEqual([]);
    expect(config.policies).toEqual([]);
    expect(config.admin.listen).toEqual({ host: '127.0.0.1', port: 8025 });
  });

  it('normalizes listen, CIDR lists, tls paths and the admin switch', () => {
    const config = parseConfigText(
      `${RELAY}server:
  listen: ["0.0.0.0:2525", "[::]:2525", "127.0.0.1:0"]
  proxy_protocol: [127.0.0.1, "::1", 10.1.2.3/8]
  xclient: 192.0.2.0/24
  tls: { key: ./tls/key.pem, cert: /abs/cert.pem }
  max_message_size: 10KB
  idle_timeout: 500ms
admin: { enabled: false }
store: { redis: ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"], on_error: tempfail }
`,
      FILE,
    );
    expect(config.server.listen).toEqual([
      { host: '0.0.0.0', port: 2525 },
      { host: '::', port: 2525 },
      { host: '127.0.0.1', port: 0 },
    ]);
    expect(config.server.proxy_protocol).toEqual(['127.0.0.1/32', '::1/128', '10.0.0.0/8']);
    expect(config.server.xclient).toEqual(['192.0.2.0/24']);
    expect(config.server.tls).toEqual({ key: '/etc/auditgate/tls/key.pem', cert: '/abs/cert.pem' });
    expect(config.server.max_message_size).toBe(10_240);
    expect(config.server.idle_timeout).toBe(0.5);
    expect(config.admin).toEqual({ hosts: [] });
    expect(config.store.redis).toEqual(['redis://10.0.0.1:6379', 'redis://10.0.0.2:6379']);
    expect(config.store.on_error).toBe('tempfail');
  });

  it('treats a section left empty as absent', () => {
    const config = parseConfigText(`${RELAY}server:\n  # hostname: commented out\nstore:\nseries:\npolicies:\n`, FILE);
    expect(config.server.max_clients).toBe(2000);
    expect(config.store.on_error).toBe('local');
    expect(config.series).toEqual({});
    expect(config.policies).toEqual([]);
  });

  it('exposes the whole shape as one strict zod schema', () => {
    const raw = parseYaml(fs.readFileSync(DEFAULT_CONFIG, 'utf8')) as Record<string, unknown>;
    const ok = configSchema(path.dirname(DEFAULT_CONFIG)).safeParse(raw);
    expect(ok.success).toBe(true);
    expect(ok.data?.series.connections6?.store_prefix).toBe(64);
    expect(ok.data?.policies.find((p) => p.name === 'burst')?.delay).toBe(5);
    const bad = configSchema('/').safeParse({ ...raw, extra: 1 });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['extra'] });
  });

  it('accepts monitor series in record rules and policies, and sessions in policies', () => {
    const config = parseConfigText(
      `${RELAY}monitors: ["5m,6"]
record:
  - { on: helo, series: "connections:300,6" }
policies:
  - { name: m, on: connect, series: "connections6:300,6", mask: 48, windows: [0, 5], above: 3, action: tempfail }
  - { name: s, on: connect, series: sessions, mask: 16, above: 9, action: reject, reply: "554 5.7.1 no" }
`,
      FILE,
    );
    expect(config.monitors).toEqual([{ interval: 300, windows: 6, text: '300,6' }]);
    expect(config.record[0]!.series).toEqual(['connections:300,6']);
    expect(config.policies[0]).toMatchObject({ series: 'connections6:300,6', mask: 48, windows: [0, 5] });
    expect(config.policies[1]).toMatchObject({ series: 'sessions', reply: '554 5.7.1 no' });
  });

  it('redacts secrets when formatting unless asked', () => {
    const config = parseConfigText(`${RELAY}admin: { listen: "0.0.0.0:8025", token: s3cret }\nstore: { redis: "redis://:pw@10.0.0.1:6379" }\n`, FILE);
    const text = formatConfig(config);
    expect(text).not.toContain('s3cret');
    expect(text).not.toContain(':pw@');
    expect(text).toContain('token: REDACTED');
    expect(parseConfigText(formatConfig(config, { showSecrets: true }), FILE)).toEqual(config);
  });
});
