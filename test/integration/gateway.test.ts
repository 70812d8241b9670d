/**
 * The gateway end to end on real sockets: a gateway on port 0 with an injected clock, a real
 * backend (smtp-server) on port 0, raw SMTP clients with PROXY headers for many addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { proxyV1, sendMail, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

const T0 = 1_800_000_000_000;

const BODY = `
series:
  conn: { type: cidr, interval: 60, windows: 4 }
  conn6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64 }
  bad_rcpt: { type: cidr, interval: 60, windows: 4 }
  senders: { type: string, interval: 60, windows: 4 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: rcpt_rejected, series: bad_rcpt }
  - { on: mail, series: senders, key: "{mail_from_domain}" }
policies:
  - { name: internal, on: connect, client: [10.0.0.0/8], action: accept }
  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 3], above: 3, action: tempfail }
  - { name: per-24, on: connect, series: conn, mask: 24, windows: [0, 3], above: 5, action: tempfail, reply: "421 4.7.0 your /24 is too busy" }
  - { name: per-64, on: connect, series: conn6, mask: 64, windows: [0, 0], above: 2, action: tempfail }
  - { name: busy-24, on: connect, series: sessions, mask: 24, above: 2, action: tempfail }
  - { name: dha, on: rcpt, series: bad_rcpt, mask: 32, windows: [0, 3], above: 1, action: tempfail, reply: "451 4.7.1 DHA limit" }
  - { name: flood, on: mail, series: senders, key: "{mail_from_domain}", windows: [0, 0], above: 2, action: reject, mode: shadow }
`;

describe('gateway', () => {
  let backend: Backend;
  let gw: TestGateway;
  const clock = new ManualClock(T0);

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: BODY, clock });
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
  });

  it('relays a message byte for byte with the envelope and a Received header naming the client', async () => {
    const replies = await sendMail(gw.port, {
      preface: proxyV1('192.0.2.50'),
      from: 'alice@sender.example',
      to: ['bob@rcpt.example'],
      body: 'Subject: relay\r\n\r\n..dot line\r\nplain line\r\n',
    });
    expect(replies.map((r) => r.code)).toEqual([220, 250, 250, 250, 250, 221]);
    expect(replies[4]!.text).toMatch(/Ok: queued as TEST \[[0-9a-z]+@gw\.test\]/);
    const m = backend.messages.at(-1)!;
    expect(m.from).toBe('alice@sender.example');
    expect(m.to).toEqual(['bob@rcpt.example']);
    const raw = m.raw.toString('latin1');
    expect(raw).toMatch(/^Received: from client\.test \(\[192\.0\.2\.50\]\)\r\n\tby gw\.test \(auditgate\) with ESMTP id [0-9a-z]+\r\n\tfor <bob@rcpt\.example>;\r\n\t.+\r\n/);
    expect(raw.slice(raw.indexOf('Subject:'))).toBe('Subject: relay\r\n\r\n.dot line\r\nplain line\r\n');
  });

  it('throttles one address at /32, says when to come back, and lets it in once the windows age out', async () => {
    const ip = '192.0.2.77';
    for (let i = 0; i < 3; i++) {
      const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
      expect(c.greeting.code).toBe(220);
      c.close();
    }
    const refused = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    expect(refused.greeting.code).toBe(421);
    expect(refused.greeting.text).toMatch(/^4\.7\.0 Too many connections from your network, try again later \(try again in \d+[sm]\) \[[0-9a-z]+@gw\.test\]$/);
    expect(await refused.closed()).toBe(true);
    const log = gw.logs.find((l) => l.policy === 'per-ip' && l.client === ip);
    expect(log).toMatchObject({ msg: 'policy fired', action: 'tempfail', mode: 'enforce', count: 4, above: 3, key: `${ip}/32` });
    // still refused a window later (refused connections count too) ...
    clock.advanceSeconds(60);
    expect((await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) })).greeting.code).toBe(421);
    // ... and free once every counted window aged out
    clock.advanceSeconds(240);
    const again = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    expect(again.greeting.code).toBe(220);
    again.close();
  });

  it('throttles a /24 across different addresses with the policy reply', async () => {
    for (let i = 1; i <= 5; i++) {
      const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(`198.51.100.${i}`) });
      expect(c.greeting.code, `198.51.100.${i}`).toBe(220);
      c.close();
    }
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('198.51.100.200') });
    expect(c.greeting.code).toBe(421);
    expect(c.greeting.text).toMatch(/^4\.7\.0 your \/24 is too busy/);
    const other = await SmtpTestClient.connect(gw.port, { preface: proxyV1('198.51.101.1') });
    expect(other.greeting.code).toBe(220);
    other.close();
  });

  it('throttles an IPv6 /64 as one client however it cycles addresses', async () => {
    for (const a of ['2001:db8:5:6::1', '2001:db8:5:6::ffff']) {
      const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(a) });
      expect(c.greeting.code).toBe(220);
      c.close();
    }
    expect((await SmtpTestClient.connect(gw.port, { preface: proxyV1('2001:db8:5:6:abcd::9') })).greeting.code).toBe(421);
    const neighbour = await SmtpTestClient.connect(gw.port, { preface: proxyV1('2001:db8:5:7::1') });
    expect(neighbour.greeting.code).toBe(220);
    neighbour.close();
    expect(await gw.gateway.store.count('conn6', '2001:db8:5:6::/64')).toBe(3);
  });

  it('lets the allow list through every limit', async () => {
    for (let i = 0; i < 6; i++) {
      const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('10.1.2.3') });
      expect(c.greeting.code).toBe(220);
      c.close();
    }
  });

  it('limits concurrent sessions per /24', async () => {
    const a = await SmtpTestClient.connect(gw.port, { preface: proxyV1('203.0.113.1') });
    const b = await SmtpTestClient.connect(gw.port, { preface: proxyV1('203.0.113.2') });
    expect([a.greeting.code, b.greeting.code]).toEqual([220, 220]);
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('203.0.113.3') });
    expect(c.greeting.code).toBe(421);
    await c.closed();
    await a.cmd('QUIT');
    await a.closed();
    // the session gauge drops when the connection closes
    for (let i = 0; i < 100 && gw.gateway.sessions.count('203.0.113.0/24') > 1; i++) await new Promise((r) => setTimeout(r, 10));
    const d = await SmtpTestClient.connect(gw.port, { preface: proxyV1('203.0.113.4') });
    expect(d.greeting.code).toBe(220);
    b.close();
    d.close();
  });

  it('answers each RCPT with the backend answer, counts rejected ones, and stops a harvester', async () => {
    const before = backend.messages.length;
    const replies = await sendMail(gw.port, {
      preface: proxyV1('192.0.2.90'),
      to: ['a@rcpt.example', 'unknown1@rcpt.example', 'b@rcpt.example'],
    });
    expect(replies.map((r) => r.code)).toEqual([220, 250, 250, 250, 550, 250, 250, 221]);
    expect(replies[4]!.text).toMatch(/^5\.1\.1 No such user here \[/);
    expect(backend.messages.length).toBe(before + 1);
    expect(backend.messages.at(-1)!.to).toEqual(['a@rcpt.example', 'b@rcpt.example']);
    expect(await gw.gateway.store.count('bad_rcpt', '192.0.2.90')).toBe(1);
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('192.0.2.90') });
    await c.cmd('EHLO harvester.test');
    expect((await c.cmd('MAIL FROM:<h@harvester.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<unknown2@rcpt.example>')).code).toBe(550);
    const dha = await c.cmd('RCPT TO:<anyone@rcpt.example>');
    expect(dha.code).toBe(451);
    expect(dha.text).toMatch(/^4\.7\.1 DHA limit/);
    c.close();
  });

  it('shadow mode enforces nothing but logs what it would have done', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await sendMail(gw.port, { preface: proxyV1(`192.0.${10 + i}.5`), from: 'x@shadow.example' });
      expect(r[2]!.code).toBe(250);
      expect(r[4]!.code).toBe(250);
    }
    const shadow = gw.logs.filter((l) => l.policy === 'flood');
    expect(shadow.length).toBe(2);
    expect(shadow[0]).toMatchObject({ mode: 'shadow', action: 'reject', key: 'shadow.example', count: 3, msg: 'policy would fire (shadow)' });
  });
});
