/**
 * The gateway end to end on real sockets: a gateway on port 0 with an injected clock, a real
 * backend (smtp-server) on port 0, raw SMTP clients with PROXY headers for many addresses.
 */
import net from 'node:net';
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
    expect(refused.greeting.text).toMatch(/^4\.7\.0 Too many connections from your network, try again later \(try again in \d+m\) \[[0-9a-z]+@gw\.test\]$/);
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

describe('gateway: backend failures', () => {
  it('gives 4xx, never 250, when the backend is down', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const deadPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${deadPort}`, body: '', proxy: '[]' });
    try {
      const c = await SmtpTestClient.connect(gw.port);
      await c.cmd('EHLO c.test');
      const r = await c.cmd('MAIL FROM:<a@b.example>');
      expect(r.code).toBe(451);
      expect(r.text).toMatch(/^4\.4\.1 Backend unavailable/);
      expect((await c.cmd('RCPT TO:<x@y.example>')).code).toBeGreaterThanOrEqual(400);
      expect((await c.cmd('DATA')).code).toBeGreaterThanOrEqual(500);
      c.close();
    } finally {
      await gw.close();
    }
  });

  it('gives 4xx, never 250, when the backend dies mid-DATA', async () => {
    const sockets = new Set<net.Socket>();
    const dying = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.write('220 dying ESMTP\r\n');
      let inData = false;
      s.on('data', (d) => {
        const t = d.toString();
        if (inData) {
          s.destroy(); // vanish in the middle of the message
          return;
        }
        for (const line of t.split('\r\n').filter(Boolean)) {
          if (/^EHLO/i.test(line)) s.write('250-dying\r\n250 8BITMIME\r\n');
          else if (/^DATA/i.test(line)) {
            inData = true;
            s.write('354 go ahead\r\n');
          } else s.write('250 ok\r\n');
        }
      });
    });
    await new Promise<void>((r) => dying.listen(0, '127.0.0.1', r));
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${(dying.address() as net.AddressInfo).port}`, body: '', proxy: '[]' });
    try {
      const replies = await sendMail(gw.port, { body: `Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(200) });
      const data = replies[4]!;
      expect(data.code).toBe(451);
      expect(data.text).toMatch(/message not accepted/);
    } finally {
      await gw.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => dying.close(() => r()));
    }
  });
});

describe('gateway: PROXY trust', () => {
  it('refuses a PROXY header from a peer that is not trusted, and counts the real peer', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      proxy: '[]',
      body: 'series:\n  conn: { type: cidr, interval: 60, windows: 4 }\nrecord:\n  - { on: connect, series: conn }\n',
    });
    try {
      const socket = net.connect(gw.port, '127.0.0.1');
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (got += d));
      await new Promise<void>((r) => socket.once('connect', () => r()));
      socket.write(proxyV1('192.0.2.66'));
      socket.write('EHLO spoof.test\r\n');
      await new Promise<void>((r) => socket.once('close', () => r()));
      expect(got).toMatch(/^(554 5\.7\.1 PROXY header not accepted|220 .*\r\n(421|554) )|^421 /m);
      expect(got).not.toMatch(/^250/m);
      expect(await gw.gateway.store.count('conn', '192.0.2.66')).toBe(0);
    } finally {
      await gw.close();
      await backend.close();
    }
  });

  it('reads PROXY v2 headers from trusted peers', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      body: 'series:\n  conn6: { type: cidr_ipv6, interval: 60, windows: 4 }\nrecord:\n  - { on: connect, series: conn6 }\n',
    });
    try {
      const hdr = Buffer.alloc(16 + 36);
      Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]).copy(hdr);
      hdr[12] = 0x21;
      hdr[13] = 0x21;
      hdr.writeUInt16BE(36, 14);
      const src = [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42];
      src.forEach((w, i) => hdr.writeUInt16BE(w, 16 + i * 2));
      hdr.writeUInt16BE(1, 16 + 30); // dst ::1
      hdr.writeUInt16BE(40000, 48);
      hdr.writeUInt16BE(25, 50);
      const c = await SmtpTestClient.connect(gw.port, { preface: hdr });
      expect(c.greeting.code).toBe(220);
      c.close();
      expect(await gw.gateway.store.count('conn6', '2001:db8::42')).toBe(1);
    } finally {
      await gw.close();
      await backend.close();
    }
  });
});

describe('gateway: tarpit', () => {
  it('delays the reply by the policy delay, then goes on', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      body: `series:\n  conn: { type: cidr, interval: 60, windows: 4 }\nrecord:\n  - { on: connect, series: conn }\npolicies:\n  - { name: slow, on: connect, series: conn, mask: 32, windows: [0, 0], above: 1, action: tarpit, delay: 400ms }\n`,
    });
    try {
      const t0 = Date.now();
      const first = await SmtpTestClient.connect(gw.port, { preface: proxyV1('192.0.2.200') });
      const fast = Date.now() - t0;
      first.close();
      const t1 = Date.now();
      const second = await SmtpTestClient.connect(gw.port, { preface: proxyV1('192.0.2.200') });
      const slow = Date.now() - t1;
      expect(second.greeting.code).toBe(220);
      expect(slow).toBeGreaterThanOrEqual(390);
      expect(fast).toBeLessThan(slow);
      second.close();
      expect(gw.logs.some((l) => l.policy === 'slow' && l.action === 'tarpit')).toBe(true);
    } finally {
      await gw.close();
      await backend.close();
    }
  });
});

describe('gateway: greeting and client limits', () => {
  it('refuses an early talker when greet_delay is set', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: '', proxy: '[]', server: '  greet_delay: 300ms\n' });
    try {
      const socket = net.connect(gw.port, '127.0.0.1');
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (got += d));
      socket.on('error', () => {});
      await new Promise<void>((r) => socket.once('connect', () => r()));
      socket.write('EHLO hasty.test\r\n');
      await new Promise<void>((r) => socket.once('close', () => r()));
      expect(got).toMatch(/^421 .*talk too soon/m);
      expect(got).not.toMatch(/^220 /m);
      const polite = await SmtpTestClient.connect(gw.port);
      expect(polite.greeting.code).toBe(220);
      expect((await polite.cmd('EHLO polite.test')).code).toBe(250);
      polite.close();
    } finally {
      await gw.close();
      await backend.close();
    }
  });

  it('answers 421 past max_clients and keeps serving the others', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: '', proxy: '[]', server: '  max_clients: 2\n' });
    try {
      const a = await SmtpTestClient.connect(gw.port);
      const b = await SmtpTestClient.connect(gw.port);
      const c = await SmtpTestClient.connect(gw.port);
      expect([a.greeting.code, b.greeting.code, c.greeting.code]).toEqual([220, 220, 421]);
      expect(c.greeting.text).toMatch(/Too many connected clients/);
      expect((await a.cmd('EHLO a.test')).code).toBe(250);
      a.close();
      b.close();
    } finally {
      await gw.close();
      await backend.close();
    }
  });
});

describe('gateway: XCLIENT, RSET and hostile input', () => {
  const body = `series:
  conn: { type: cidr, interval: 60, windows: 4 }
  senders: { type: string, interval: 60, windows: 4 }
record:
  - { on: connect, series: conn }
  - { on: mail, series: senders, key: "{mail_from}" }
policies:
  - { name: proxies, on: connect, client: [127.0.0.0/8], action: accept }
  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 3], above: 1, action: tempfail }
  - { name: sender-flood, on: mail, series: senders, key: "{mail_from}", windows: [0, 0], above: 1, action: reject }
  - { name: no-spam, on: mail, client: [192.0.2.250/32], action: reject }
`;

  it('runs the connect stage for the client an XCLIENT peer forwards', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body, proxy: '[]', server: '  xclient: [127.0.0.0/8]\n' });
    try {
      for (let i = 0; i < 2; i++) {
        const c = await SmtpTestClient.connect(gw.port);
        expect((await c.cmd('EHLO proxy.test')).text).toMatch(/XCLIENT/);
        expect((await c.cmd('XCLIENT ADDR=192.0.2.5 NAME=[UNAVAILABLE]')).code).toBe(220);
        // the forwarded client's connect stage runs at its EHLO (XCLIENT has no connect hook)
        const ehlo = await c.cmd(`EHLO client${i}.test`);
        if (i === 0) {
          expect(ehlo.code).toBe(250);
          expect((await c.cmd('MAIL FROM:<a@b.example>')).code).toBe(250);
        } else {
          expect(ehlo.code).toBe(421);
          expect(ehlo.text).toMatch(/^4\.7\.0 Too many connections/);
          expect(await c.closed()).toBe(true);
        }
        c.close();
      }
      expect(await gw.gateway.store.count('conn', '192.0.2.5')).toBe(2);
    } finally {
      await gw.close();
      await backend.close();
    }
  });

  it('frees the backend transaction when MAIL after RSET is refused, and relays the next one', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body });
    try {
      const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('192.0.2.250') });
      await c.cmd('EHLO a.test');
      const refused = await c.cmd('MAIL FROM:<x@y.example>');
      expect(refused.code).toBe(550);
      c.close();
      const d = await SmtpTestClient.connect(gw.port, { preface: proxyV1('192.0.2.251') });
      await d.cmd('EHLO b.test');
      expect((await d.cmd('MAIL FROM:<x1@y.example>')).code).toBe(250);
      expect((await d.cmd('RCPT TO:<r@y.example>')).code).toBe(250);
      expect((await d.cmd('RSET')).code).toBe(250);
      expect((await d.cmd('MAIL FROM:<x2@y.example>')).code).toBe(250);
      expect((await d.cmd('RCPT TO:<r2@y.example>')).code).toBe(250);
      expect((await d.data('Subject: after rset\r\n\r\nx\r\n')).code).toBe(250);
      d.close();
      const m = backend.messages.at(-1)!;
      expect([m.from, m.to]).toEqual(['x2@y.example', ['r2@y.example']]);
      expect(gw.gateway.relay.stats().active).toBe(0);
    } finally {
      await gw.close();
      await backend.close();
    }
  });

  it('refuses a reload that needs a restart and keeps the old config', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body });
    try {
      const { parseConfigText } = await import('../../src/config/load.js');
      const next = parseConfigText(
        `server: { listen: ["127.0.0.1:0"] }\nrelay: { url: "smtp://127.0.0.1:${backend.port}" }\nstore: { redis: "redis://127.0.0.1:1" }\nseries:\n  conn: { type: cidr, interval: 60, windows: 4, replicate: cluster }\n`,
        'next.yaml',
      );
      await expect(gw.gateway.reload(next)).rejects.toThrow(/reload refused: store\.redis/);
      expect(gw.gateway.config.policies.map((p) => p.name)).toEqual(['proxies', 'per-ip', 'sender-flood', 'no-spam']);
    } finally {
      await gw.close();
      await backend.close();
    }
  });
});
