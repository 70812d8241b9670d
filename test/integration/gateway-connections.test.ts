/** The gateway end to end on real sockets: PROXY trust, tarpit delays, greeting and client limits. */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway } from '../helpers/smtp.js';

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
