/**
 * Who may say who the client is: after a PROXY header, XCLIENT trust is decided by the address
 * the header gave, not by the proxy's own (loopback) address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

describe('XCLIENT after a PROXY header', () => {
  let backend: Backend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      proxy: '[127.0.0.1/32]',
      server: '  xclient: [127.0.0.1/32, "::1/128"]\n',
      body: `policies:
  - { name: internal, on: connect, client: [10.0.0.0/8, "fd00::/8"], action: accept }
  - { name: blocked, on: mail, client: [203.0.113.0/24, "2001:db8:bad::/48"], action: reject }
`,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
  });

  it.each(['203.0.113.9', '2001:db8:bad::9'])('a client presented by PROXY as %s is not offered XCLIENT and cannot use it', async (client) => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(client) });
    try {
      const ehlo = await c.cmd('EHLO spoofer.test');
      expect(ehlo.code).toBe(250);
      expect(ehlo.text).not.toMatch(/XCLIENT/);
      const x = await c.cmd('XCLIENT ADDR=10.1.2.3');
      expect(x.code).toBeGreaterThanOrEqual(500);
      // still the client the PROXY header named: the mail policy refuses it
      expect((await c.cmd('EHLO spoofer.test')).code).toBe(250);
      expect((await c.cmd('MAIL FROM:<a@x.example>')).code).toBe(550);
    } finally {
      c.close();
    }
  });

  it('a PROXY header naming a trusted XCLIENT peer keeps XCLIENT for it', async () => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('::1') });
    try {
      expect((await c.cmd('EHLO relay.test')).text).toMatch(/XCLIENT/);
      expect((await c.cmd('XCLIENT ADDR=203.0.113.10')).code).toBe(220);
      expect((await c.cmd('EHLO client.test')).code).toBe(250);
      expect((await c.cmd('MAIL FROM:<a@x.example>')).code).toBe(550);
    } finally {
      c.close();
    }
  });
});
