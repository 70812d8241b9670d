/** The gateway end to end on real sockets: XCLIENT, RSET, hostile input and reloads needing a restart. */
import { describe, expect, it } from 'vitest';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway } from '../helpers/smtp.js';

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
