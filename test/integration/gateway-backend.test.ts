/** The gateway end to end on real sockets when its backend is down or dies mid-DATA. */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { sendMail, SmtpTestClient, startTestGateway } from '../helpers/smtp.js';

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
