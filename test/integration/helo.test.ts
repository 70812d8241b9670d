/**
 * The helo stage answers the HELO/EHLO itself: record rules count HELO names, a refusal
 * replaces the 250 (and MAIL then needs a new HELO), a tarpit delays it, pipelined commands
 * wait for it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const BODY = `series:
  helo_names: { type: string, interval: 60, windows: 2 }
  helo_ips: { type: cidr, interval: 60, windows: 2 }
record:
  - { on: helo, series: helo_names, key: "{helo}" }
  - { on: helo, series: helo_ips }
policies:
  - { name: our-name, on: helo, series: helo_names, key: "{helo}", windows: [0, 1], above: 2, action: reject, reply: "550 5.7.1 HELO name refused" }
  - { name: slow-helo, on: helo, series: helo_ips, mask: 32, windows: [0, 0], above: 1, action: tarpit, delay: 300ms }
`;

async function setup(): Promise<{ backend: Backend; gw: TestGateway }> {
  const backend = await startBackend();
  const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: BODY });
  cleanups.push(() => backend.close(), () => gw.close());
  return { backend, gw };
}

async function client(gw: TestGateway, ip: string): Promise<SmtpTestClient> {
  const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
  cleanups.push(() => c.close());
  return c;
}

describe('helo stage', () => {
  it('counts HELO names at HELO/EHLO time; a refusal is the reply to EHLO and MAIL then needs a new HELO', async () => {
    const { gw } = await setup();
    for (const ip of ['192.0.2.1', '192.0.2.2']) {
      const c = await client(gw, ip);
      expect((await c.cmd('EHLO Spammy.Example')).code).toBe(250);
      c.close();
    }
    expect(await gw.gateway.store.count('helo_names', 'spammy.example')).toBe(2);

    const c = await client(gw, '192.0.2.3');
    const refused = await c.cmd('EHLO spammy.example');
    expect(refused.code).toBe(550);
    expect(refused.text).toMatch(/^5\.7\.1 HELO name refused \[[0-9a-f]{12}@gw\.test\]$/);
    expect(await gw.gateway.store.count('helo_names', 'spammy.example')).toBe(3);
    const fired = gw.logs.filter((l) => l.msg === 'policy fired' && l.policy === 'our-name');
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatchObject({ stage: 'helo', client: '192.0.2.3', key: 'spammy.example', count: 3 });
    // the refused name does not count as a HELO
    const mail = await c.cmd('MAIL FROM:<a@example.org>');
    expect(mail.code).toBe(503);
    // another name is fine on the same connection
    expect((await c.cmd('HELO honest.example')).code).toBe(250);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
  });

  it('a tarpit delays the 250, and a pipelined command is answered after it', async () => {
    const { gw } = await setup();
    const c = await client(gw, '192.0.2.9');
    expect((await c.cmd('EHLO first.example')).code).toBe(250); // count 1: no tarpit yet
    const t0 = Date.now();
    c.socket.write('EHLO second.example\r\nNOOP\r\n');
    const ehlo = await c.reply();
    const waited = Date.now() - t0;
    const noop = await c.reply();
    expect(ehlo.code).toBe(250);
    expect(ehlo.text).toMatch(/PIPELINING/);
    expect(noop.code).toBe(250);
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(gw.logs.some((l) => l.msg === 'policy fired' && l.policy === 'slow-helo' && l.action === 'tarpit')).toBe(true);
  });

  it('a malformed EHLO gets the library 501 and is not an event', async () => {
    const { gw } = await setup();
    const c = await client(gw, '192.0.2.20');
    expect((await c.cmd('EHLO')).code).toBe(501);
    expect((await c.cmd('EHLO two words')).code).toBe(501);
    expect(await gw.gateway.store.count('helo_ips', '192.0.2.20')).toBe(0);
    expect((await c.cmd('EHLO fine.example')).code).toBe(250);
    expect(await gw.gateway.store.count('helo_ips', '192.0.2.20')).toBe(1);
  });
});
