/**
 * AUTH through the gateway: credentials checked by a real backend (smtp-server with onAuth),
 * the authenticated backend connection kept for that client alone, and auth_fail events
 * counted and acted on (brute-force defence) — over real sockets.
 */
import net, { type AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { createMetrics } from '../../src/admin/metrics.js';
import { proxyV1, SmtpTestClient, startTestGateway, type TestGateway } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';
import { freePort } from '../helpers/redis.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

interface AuthBackend {
  port: number;
  /** Cuts every open connection from the backend side. */
  dropAll(): void;
  /** Every AUTH the backend was asked: user and whether it passed. */
  attempts: Array<{ user: string; ok: boolean }>;
  /** Messages with the backend session's authenticated user ('' when none). */
  messages: Array<{ user: string; from: string; to: string[]; raw: string }>;
  connections: number;
  closes: number;
}

const USERS: Record<string, string> = { alice: 'secret' };

async function startAuthBackend(opts: { offerAuth?: boolean } = {}): Promise<AuthBackend> {
  const b: AuthBackend = { port: 0, dropAll: () => undefined, attempts: [], messages: [], connections: 0, closes: 0 };
  const server = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    disabledCommands: opts.offerAuth === false ? ['STARTTLS', 'AUTH'] : ['STARTTLS'],
    logger: false,
    closeTimeout: 100,
    onConnect(_s, cb) {
      b.connections++;
      cb();
    },
    onClose() {
      b.closes++;
    },
    onAuth(auth, _session, cb) {
      const ok = auth.username !== undefined && USERS[auth.username] === auth.password;
      b.attempts.push({ user: auth.username ?? '', ok });
      if (ok) cb(null, { user: auth.username });
      else cb(Object.assign(new Error('5.7.8 Invalid username or password'), { responseCode: 535 }));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        b.messages.push({
          user: typeof session.user === 'string' ? session.user : '',
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        cb(null, 'Ok: queued');
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.server.address() as AddressInfo).port;
  b.dropAll = () => {
    for (const c of (server as unknown as { connections: Set<{ _socket: net.Socket }> }).connections) c._socket.destroy();
  };
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return b;
}

const AUTH_SERVER = '  auth: { enabled: true, allow_plaintext: true }';
/** Failures per /32 over the current 60 s window: the third failure (count 3 > 2) refuses. */
const AUTH_BODY = `series:
  auth_failures: { type: cidr, interval: 60, windows: 2 }
  auth_fail_users: { type: string, interval: 60, windows: 2 }
record:
  - { on: auth_fail, series: auth_failures }
  - { on: auth_fail, series: auth_fail_users, key: "{auth_user}" }
policies:
  - { name: auth-bruteforce, on: auth_fail, series: auth_failures, mask: 32, windows: [0, 1], above: 2, action: tempfail }
`;

async function gateway(backendPort: number, body = AUTH_BODY, server = AUTH_SERVER, proxy?: string): Promise<TestGateway> {
  const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backendPort}`, server, body, ...(proxy === undefined ? {} : { proxy }) });
  cleanups.push(() => gw.close());
  return gw;
}

async function client(gw: TestGateway, ip: string): Promise<SmtpTestClient> {
  const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
  cleanups.push(() => c.close());
  expect(c.greeting.code).toBe(220);
  return c;
}

const plain = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString('base64');


describe('AUTH checked by the backend', () => {
  it('offers AUTH PLAIN LOGIN; a good password is 235 and the mail goes over that authenticated backend connection, which is not pooled', async () => {
    const b = await startAuthBackend();
    const gw = await gateway(b.port);
    const c = await client(gw, '192.0.2.10');
    const ehlo = await c.cmd('EHLO client.test');
    expect(ehlo.text).toMatch(/AUTH PLAIN LOGIN/);
    const auth = await c.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`);
    expect(auth.code).toBe(235);
    expect(b.attempts).toEqual([{ user: 'alice', ok: true }]);
    for (const n of [1, 2]) {
      expect((await c.cmd(`MAIL FROM:<alice@example.org>`)).code).toBe(250);
      expect((await c.cmd('RCPT TO:<bob@example.net>')).code).toBe(250);
      expect((await c.data(`Subject: ${n}\r\n\r\nhi\r\n`)).code).toBe(250);
    }
    expect(b.messages.map((m) => m.user)).toEqual(['alice', 'alice']);
    expect(b.connections).toBe(1);
    expect((await c.cmd('QUIT')).code).toBe(221);
    // the authenticated backend connection goes with the client
    await waitFor(() => b.closes === 1);

    // an unauthenticated client next gets a connection of its own, not alice's
    const d = await client(gw, '192.0.2.11');
    await d.cmd('EHLO other.test');
    expect((await d.cmd('MAIL FROM:<x@example.org>')).code).toBe(250);
    expect((await d.cmd('RCPT TO:<bob@example.net>')).code).toBe(250);
    expect((await d.data('Subject: 3\r\n\r\nhi\r\n')).code).toBe(250);
    expect(b.messages.at(-1)!.user).toBe('');
    expect(b.connections).toBe(2);
  });

  it('AUTH LOGIN works the same way', async () => {
    const b = await startAuthBackend();
    const gw = await gateway(b.port);
    const c = await client(gw, '192.0.2.12');
    await c.cmd('EHLO client.test');
    expect((await c.cmd('AUTH LOGIN')).code).toBe(334);
    expect((await c.cmd(Buffer.from('alice').toString('base64'))).code).toBe(334);
    expect((await c.cmd(Buffer.from('secret').toString('base64'))).code).toBe(235);
    expect(b.attempts).toEqual([{ user: 'alice', ok: true }]);
  });

  it('failures are auth_fail events: counted per IP and per user; the third is refused with 421 before the backend is asked, and so are later attempts', async () => {
    const b = await startAuthBackend();
    const gw = await gateway(b.port);
    const ip = '198.51.100.20';
    const c = await client(gw, ip);
    await c.cmd('EHLO client.test');
    for (let i = 0; i < 2; i++) {
      const r = await c.cmd(`AUTH PLAIN ${plain('Alice', `guess${i}`)}`);
      expect(r.code).toBe(535);
      expect(r.text).toMatch(/^5\.7\.8 Authentication credentials invalid \[[0-9a-f]{12}@gw\.test\]$/);
    }
    // the third attempt is counted first (3 > 2): refused, its password never checked
    const third = await c.cmd(`AUTH PLAIN ${plain('alice', 'guess2')}`);
    expect(third.code).toBe(421);
    expect(third.text).toMatch(/4\.7\.0 Too many authentication failures, try again later.*\[[0-9a-f]{12}@gw\.test\]/);
    expect(await c.closed()).toBe(true);
    expect(await gw.gateway.store.count('auth_failures', ip)).toBe(3);
    expect(await gw.gateway.store.count('auth_fail_users', 'alice')).toBe(3);
    expect(b.attempts).toHaveLength(2);
    const fired = gw.logs.filter((l) => l.msg === 'policy fired' && l.policy === 'auth-bruteforce');
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatchObject({ client: ip, stage: 'auth_fail', action: 'tempfail', count: 3 });

    // the right password from the same address is refused without asking the backend
    const d = await client(gw, ip);
    await d.cmd('EHLO client.test');
    const again = await d.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`);
    expect(again.code).toBe(421);
    expect(b.attempts).toHaveLength(2);
    expect(await gw.gateway.store.count('auth_failures', ip)).toBe(4);

    // another address is not affected
    const e = await client(gw, '198.51.100.21');
    await e.cmd('EHLO client.test');
    expect((await e.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`)).code).toBe(235);

    // one log line per attempt, and the counters /metrics exposes
    const lines = gw.logs.filter((l) => l.msg === 'AUTH');
    expect(lines.map((l) => [l.client, l.user, l.result])).toEqual([
      [ip, 'Alice', 'failed'],
      [ip, 'Alice', 'failed'],
      [ip, 'alice', 'refused'],
      [ip, 'alice', 'refused'],
      ['198.51.100.21', 'alice', 'ok'],
    ]);
    expect(lines[3]).toMatchObject({ policy: 'auth-bruteforce', method: 'PLAIN' });
    expect(JSON.stringify(lines)).not.toContain('secret');
    // a right password takes its counted attempt back
    expect(await gw.gateway.store.count('auth_failures', '198.51.100.21')).toBe(0);
    const metrics = await createMetrics(gw.gateway).render();
    expect(metrics).toMatch(/^auditgate_auth_total\{result="ok"\} 1$/m);
    expect(metrics).toMatch(/^auditgate_auth_total\{result="failed"\} 2$/m);
    expect(metrics).toMatch(/^auditgate_auth_total\{result="refused"\} 2$/m);
  });

  it('forty attempts at once from one address: the backend checks no more passwords than the limit allows', async () => {
    const b = await startAuthBackend();
    const body = AUTH_BODY.replace('above: 2', 'above: 10');
    const gw = await gateway(b.port, body);
    const ip = '203.0.113.40';
    const clients = await Promise.all(Array.from({ length: 40 }, () => client(gw, ip)));
    await Promise.all(clients.map((c) => c.cmd('EHLO client.test')));
    const replies = await Promise.all(clients.map((c, i) => c.cmd(`AUTH PLAIN ${plain('alice', `guess${i}`)}`)));
    expect(b.attempts.length).toBeLessThanOrEqual(10);
    expect(replies.filter((r) => r.code === 535)).toHaveLength(b.attempts.length);
    expect(replies.filter((r) => r.code === 421)).toHaveLength(40 - b.attempts.length);
    expect(await gw.gateway.store.count('auth_failures', ip, 0, 1)).toBe(40);
  });

  it('a backend that is down gives 454, and one that does not offer AUTH gives 454; neither is an auth_fail', async () => {
    const noAuth = await startAuthBackend({ offerAuth: false });
    const gw = await gateway(noAuth.port);
    const c = await client(gw, '192.0.2.30');
    await c.cmd('EHLO client.test');
    const r = await c.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`);
    expect(r.code).toBe(454);
    expect(r.text).toMatch(/^4\.7\.0 Temporary authentication failure/);

    const gw2 = await gateway(await freePort()); // nothing listens there
    const d = await client(gw2, '192.0.2.31');
    await d.cmd('EHLO client.test');
    const down = await d.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`);
    expect(down.code).toBe(454);
    expect(down.text).toMatch(/Temporary authentication failure, try again later \[[0-9a-f]{12}@gw\.test\]/);
    expect(await gw.gateway.store.count('auth_failures', '192.0.2.30')).toBe(0);
    expect(await gw2.gateway.store.count('auth_failures', '192.0.2.31')).toBe(0);
  });

  it('after RSET an authenticated client starts its next transaction at once (the RSET on its backend connection is awaited)', async () => {
    const b = await startAuthBackend();
    const gw = await gateway(b.port);
    const c = await client(gw, '192.0.2.50');
    await c.cmd('EHLO client.test');
    expect((await c.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`)).code).toBe(235);
    expect((await c.cmd('MAIL FROM:<alice@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.net>')).code).toBe(250);
    expect((await c.cmd('RSET')).code).toBe(250);
    expect((await c.cmd('MAIL FROM:<alice@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<unknown@example.net>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<carol@example.net>')).code).toBe(250);
    expect((await c.data('Subject: after rset\r\n\r\nhi\r\n')).code).toBe(250);
    expect(b.messages).toEqual([expect.objectContaining({ user: 'alice', to: ['unknown@example.net', 'carol@example.net'] })]);
    expect(b.connections).toBe(1);
    expect(gw.gateway.relay.stats()).toMatchObject({ active: 0, failures: 0 });
  });

  it('a lost authenticated backend session is a 421: the client reconnects and logs in again', async () => {
    const b = await startAuthBackend();
    const gw = await gateway(b.port);
    const c = await client(gw, '192.0.2.51');
    await c.cmd('EHLO client.test');
    expect((await c.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`)).code).toBe(235);
    b.dropAll();
    await waitFor(() => b.closes >= 1);
    const mail = await c.cmd('MAIL FROM:<alice@example.org>');
    expect(mail.code).toBe(421);
    expect(mail.text).toMatch(/^4\.4\.2 Authenticated backend session lost.*\[[0-9a-f]{12}@gw\.test\]$/);
    expect(await c.closed()).toBe(true);
  });

  it('XCLIENT ends the identity: the next mail does not use the old user\'s backend connection, nothing leaks, and auth_fail counts the attempted user', async () => {
    const b = await startAuthBackend();
    const gw = await gateway(b.port, AUTH_BODY, `${AUTH_SERVER}\n  xclient: [127.0.0.0/8]`, '[]');
    const c = await SmtpTestClient.connect(gw.port);
    cleanups.push(() => c.close());
    await c.cmd('EHLO proxy.test');
    expect((await c.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`)).code).toBe(235);
    // a trusted proxy forwards a client; LOGIN= is let through unauthenticated, as smtp-server does
    expect((await c.cmd('XCLIENT ADDR=192.0.2.77 LOGIN=alice')).code).toBe(220);
    await c.cmd('EHLO client.test');
    expect((await c.cmd('MAIL FROM:<x@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@example.net>')).code).toBe(250);
    expect((await c.data('Subject: forwarded\r\n\r\nhi\r\n')).code).toBe(250);
    expect(b.messages.map((m) => m.user)).toEqual(['']);
    // smtp-server leaves user = false after XCLIENT: a failure counts the user actually tried
    expect((await c.cmd(`AUTH PLAIN ${plain('Bob', 'wrong')}`)).code).toBe(535);
    expect(await gw.gateway.store.count('auth_fail_users', 'bob')).toBe(1);
    expect(await gw.gateway.store.count('auth_fail_users', 'false')).toBe(0);
    expect(await gw.gateway.store.count('auth_failures', '192.0.2.77')).toBe(1);
    expect((await c.cmd('QUIT')).code).toBe(221);
    // alice's authenticated connection was closed when XCLIENT ended her identity; the other
    // one (unauthenticated) is back in the pool, as any plain transaction's would be
    await waitFor(() => b.closes === 1);
    expect(b.connections).toBe(2);
    expect(gw.gateway.relay.stats()).toMatchObject({ idle: 1, active: 0 });
  });

  it('a tarpit at auth_fail delays the 535', async () => {
    const b = await startAuthBackend();
    const body = `series:
  auth_failures: { type: cidr, interval: 60, windows: 2 }
record:
  - { on: auth_fail, series: auth_failures }
policies:
  - { name: slow-guesses, on: auth_fail, series: auth_failures, mask: 32, windows: [0, 0], above: 1, action: tarpit, delay: 400ms }
`;
    const gw = await gateway(b.port, body);
    const c = await client(gw, '192.0.2.70');
    await c.cmd('EHLO client.test');
    const firings = (): number => gw.logs.filter((l) => l.msg === 'policy fired' && l.policy === 'slow-guesses' && l.action === 'tarpit').length;
    expect((await c.cmd(`AUTH PLAIN ${plain('alice', 'nope')}`)).code).toBe(535);
    expect(firings()).toBe(0); // first failure: count 1, not above 1
    const t0 = Date.now();
    const second = await c.cmd(`AUTH PLAIN ${plain('alice', 'nope2')}`);
    expect(second.code).toBe(535);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(firings()).toBe(1);
    // the tarpit does not refuse: the right password still works afterwards
    expect((await c.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`)).code).toBe(235);
  });

  it('AUTH is not offered unless enabled', async () => {
    const b = await startAuthBackend();
    const gw = await gateway(b.port, 'series: {}\n', '');
    const c = await client(gw, '192.0.2.40');
    const ehlo = await c.cmd('EHLO client.test');
    expect(ehlo.text).not.toMatch(/AUTH/);
    const r = await c.cmd(`AUTH PLAIN ${plain('alice', 'secret')}`);
    expect(r.code).toBeGreaterThanOrEqual(500);
    expect(b.attempts).toHaveLength(0);
  });
});

describe('AUTH config', () => {
  const base = (server: string, relay = 'smtp://127.0.0.1:2526'): string => `server:
  listen: ["127.0.0.1:2525"]
${server}
relay:
  url: ${relay}
`;

  it('refuses AUTH with a dir: relay (nothing to check the password with)', () => {
    expect(() => parseConfigText(base('  auth: { enabled: true, allow_plaintext: true }', 'dir:/tmp/mail'), 'a.yaml')).toThrow(ConfigError);
    try {
      parseConfigText(base('  auth: { enabled: true, allow_plaintext: true }', 'dir:/tmp/mail'), 'a.yaml');
    } catch (err) {
      expect((err as Error).message).toMatch(/a\.yaml:3:\d+ server\.auth\.enabled: AUTH is checked by the backend: it needs an smtp:\/\/ relay/);
    }
  });

  it('refuses AUTH without TLS unless allow_plaintext', () => {
    let message = '';
    try {
      parseConfigText(base('  auth:\n    enabled: true'), 'b.yaml');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/b\.yaml:4:\d+ server\.auth\.enabled: AUTH without TLS sends passwords in clear text/);
  });

  it('rejects unknown keys under server.auth', () => {
    expect(() => parseConfigText(base('  auth: { enabled: true, allow_plaintext: true, methods: [PLAIN] }'), 'c.yaml')).toThrow(/server\.auth.*methods/);
  });
});
