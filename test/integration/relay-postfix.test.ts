/**
 * A real Postfix as the gateway's backend (Debian's package, a private instance started by the
 * test, no PROXY header, STARTTLS with a throwaway certificate from a test CA): with
 * relay.tls.mode required the gateway checks Postfix's certificate and name, relays over TLS,
 * and Postfix passes the message on to the test's last hop. Postfix runs with
 * smtputf8_enable = no, so it is also a real backend without SMTPUTF8: the gateway does not
 * offer it and refuses a MAIL that asks for it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCa, type TestCa } from '../helpers/cert.js';
import { PostfixInstance } from '../helpers/postfix.js';
import { requireProgram } from '../helpers/programs.js';
import { SmtpTestClient, sendMail, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const ok = requireProgram('postfix', { pkg: 'postfix', purpose: 'the relay-to-Postfix (STARTTLS) tests', root: true });

describe.skipIf(!ok)('a real Postfix backend with STARTTLS', () => {
  let ca: TestCa;
  let lastHop: Backend;
  let pf: PostfixInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    ca = makeCa();
    const cert = ca.issue(['postfix.test']);
    lastHop = await startBackend();
    pf = await PostfixInstance.start({ relayPort: lastHop.port, proxyProtocol: false, tls: { cert: cert.cert, key: cert.key } });
    gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${pf.port}`,
      relayTimeout: '20s',
      relayExtra: `  tls: { mode: required, ca: "${ca.cert}", servername: postfix.test }\n`,
      body: '',
      proxy: '[]',
    });
    // the relay's first connection (at start) tells it what Postfix offers
    await waitFor(() => gw.gateway.relay.capabilities() !== undefined, 20_000);
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
    await pf?.stop();
    await lastHop?.close();
    ca?.remove();
  });

  const dump = () => `--- ${pf.maillog} ---\n${pf.log()}\n--- gateway ---\n${gw.logs.map((l) => JSON.stringify(l)).join('\n')}`;

  it('checks the certificate and relays over TLS; Postfix passes the message on', async () => {
    const replies = await sendMail(gw.port, { to: ['rcpt@example.net'], body: 'Subject: via postfix over TLS\r\n\r\nhello\r\n' });
    expect(replies.map((r) => r.code), dump()).toEqual([220, 250, 250, 250, 250, 221]);
    try {
      await waitFor(() => lastHop.messages.length > 0, 20_000);
    } catch {
      throw new Error(`the message did not reach the last hop\n${dump()}`);
    }
    expect(lastHop.messages[0]!.to).toEqual(['rcpt@example.net']);
    expect(lastHop.messages[0]!.raw.toString('latin1')).toContain('Subject: via postfix over TLS');
    // Postfix's own Received: header says the gateway's session was encrypted
    expect(lastHop.messages[0]!.raw.toString('latin1')).toMatch(/\(using TLSv1\.[23] with cipher/);
    expect(pf.log(), dump()).toMatch(/TLS connection established from \S+\[127\.0\.0\.1\]: TLSv1\.[23]/);
  });

  it('does not offer SMTPUTF8, which this Postfix lacks, and refuses a MAIL that asks for it', async () => {
    const c = await SmtpTestClient.connect(gw.port);
    try {
      const features = (await c.cmd('EHLO client.test')).text.split('\n').slice(1);
      expect(features).toContain('8BITMIME'); // Postfix offers it
      expect(features).not.toContain('SMTPUTF8');
      const mail = await c.cmd('MAIL FROM:<jörg@exämple.test> BODY=8BITMIME SMTPUTF8');
      expect(mail.code).toBe(553);
      expect(mail.text).toMatch(/^5\.6\.7 /);
      expect((await c.cmd('MAIL FROM:<a@example.org> BODY=8BITMIME')).code).toBe(250);
    } finally {
      c.close();
    }
  });
});
