/**
 * No silent downgrade (RFC 6152 §3, RFC 6531 §3.2, RFC 1870): against a backend that offers
 * neither 8BITMIME nor SMTPUTF8 and has a small SIZE, the gateway does not offer them either,
 * and a MAIL that asks for them is refused (553 5.6.7, 554 5.6.3, 552 5.3.4) instead of reaching
 * the backend without its parameters. A backend that offers them gets every parameter and the
 * 8-bit message byte for byte. With several backends the EHLO offers what all of them offer, and
 * a transaction that needs an extension goes to a backend that has it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SmtpTestClient, startTestGateway, type TestGateway } from '../helpers/smtp.js';
import { startSmtpBackend, type SmtpBackend, type SmtpBackendOptions } from '../helpers/smtp-backend.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function backend(opts: SmtpBackendOptions): Promise<SmtpBackend> {
  const b = await startSmtpBackend(opts);
  cleanups.unshift(() => b.close());
  return b;
}

/** A gateway whose relay already learned what its backends offer. */
async function gateway(ports: number[], strategy = 'failover'): Promise<TestGateway> {
  const urls = JSON.stringify(ports.map((p) => `smtp://127.0.0.1:${p}`));
  const gw = await startTestGateway({ relay: urls, relayExtra: `  strategy: ${strategy}\n`, body: '', proxy: '[]', server: '  max_message_size: 10MB\n' });
  cleanups.push(() => gw.close());
  await waitFor(() => gw.gateway.relay.stats().backends.every((b) => b.idle > 0), 10_000);
  return gw;
}

async function client(port: number): Promise<SmtpTestClient> {
  const c = await SmtpTestClient.connect(port);
  cleanups.push(() => c.close());
  return c;
}

const UTF8_SENDER = 'jörg@exämple.test';
const EIGHT_BIT = 'Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n';

describe('a backend without 8BITMIME and SMTPUTF8, SIZE 1000', () => {
  it('is not offered to clients, and a MAIL that needs them is refused, never downgraded', async () => {
    const b = await backend({ hide8BITMIME: true, hideSMTPUTF8: true, size: 1000 });
    const gw = await gateway([b.port]);
    const c = await client(gw.port);
    const ehlo = await c.cmd('EHLO client.test');
    expect(ehlo.code).toBe(250);
    const features = ehlo.text.split('\n').slice(1);
    expect(features).not.toContain('8BITMIME');
    expect(features).not.toContain('SMTPUTF8');
    expect(features).not.toContain('DSN');
    expect(features).toContain('SIZE 1000');

    // the case: as a new user tried it
    const utf8 = await c.cmd(`MAIL FROM:<${UTF8_SENDER}> BODY=8BITMIME SMTPUTF8`);
    expect(utf8.code).toBe(553);
    expect(utf8.text).toMatch(/^5\.6\.7 The backend does not support SMTPUTF8/);
    const eight = await c.cmd('MAIL FROM:<a@example.org> BODY=8BITMIME');
    expect(eight.code).toBe(554);
    expect(eight.text).toMatch(/^5\.6\.3 Conversion required but not supported/);
    const big = await c.cmd('MAIL FROM:<a@example.org> SIZE=5000');
    expect(big.code).toBe(552);
    expect(big.text).toMatch(/^5\.3\.4 Message size exceeds fixed maximum message size of 1000 bytes/);
    expect(b.mails).toEqual([]);

    // what it can take goes through: SIZE passed on, BODY=7BIT (its default) left out
    expect((await c.cmd('MAIL FROM:<a@example.org> SIZE=200 BODY=7BIT')).code).toBe(250);
    const utf8Rcpt = await c.cmd(`RCPT TO:<${UTF8_SENDER}>`);
    expect(utf8Rcpt.code).toBe(553);
    expect(utf8Rcpt.text).toMatch(/^5\.6\.7 /);
    expect((await c.cmd('RCPT TO:<b@example.net>')).code).toBe(250);
    expect((await c.data('Subject: plain\r\n\r\nhello\r\n')).code).toBe(250);
    expect(b.mails).toEqual([{ address: 'a@example.org', args: { SIZE: '200' } }]);
    expect(b.messages.map((m) => m.to)).toEqual([['b@example.net']]);
  });
});

describe('a backend with 8BITMIME and SMTPUTF8', () => {
  it('gets every parameter and the 8-bit message as sent', async () => {
    const b = await backend({});
    const gw = await gateway([b.port]);
    const c = await client(gw.port);
    const features = (await c.cmd('EHLO client.test')).text.split('\n').slice(1);
    expect(features).toEqual(expect.arrayContaining(['8BITMIME', 'SMTPUTF8']));
    expect((await c.cmd(`MAIL FROM:<${UTF8_SENDER}> BODY=8bitmime SMTPUTF8`)).code).toBe(250);
    expect((await c.cmd('RCPT TO:<empfänger@exämple.test>')).code).toBe(250);
    const data = await c.cmd('DATA');
    expect(data.code).toBe(354);
    c.socket.write(Buffer.from(`${EIGHT_BIT}.\r\n`, 'utf8'));
    expect((await c.reply()).code).toBe(250);
    expect(b.mails).toEqual([{ address: UTF8_SENDER, args: { BODY: '8BITMIME', SMTPUTF8: true } }]);
    expect(b.messages[0]!.to).toEqual(['empfänger@exämple.test']);
    expect(b.messages[0]!.raw.toString('utf8')).toContain('Grüße aus Köln');
  });
});

describe('several backends', () => {
  it('the EHLO offers what every backend offers; a transaction that needs SMTPUTF8 goes to a backend that has it', async () => {
    const without = await backend({ hide8BITMIME: true, hideSMTPUTF8: true });
    const withAll = await backend({});
    // round_robin would give every other transaction to the one without
    const gw = await gateway([without.port, withAll.port], 'round_robin');
    const c = await client(gw.port);
    const features = (await c.cmd('EHLO client.test')).text.split('\n').slice(1);
    expect(features).not.toContain('8BITMIME');
    expect(features).not.toContain('SMTPUTF8');
    for (let i = 0; i < 4; i++) {
      expect((await c.cmd(`MAIL FROM:<${UTF8_SENDER}> SMTPUTF8`)).code).toBe(250);
      expect((await c.cmd('RSET')).code).toBe(250);
    }
    expect(withAll.mails).toHaveLength(4);
    expect(without.mails).toEqual([]);
  });

  it('when the backends that offer SMTPUTF8 cannot be reached, a MAIL that needs it is a 4xx, not a 5xx', async () => {
    const withAll = await backend({});
    const without = await backend({ hide8BITMIME: true, hideSMTPUTF8: true });
    const gw = await gateway([withAll.port, without.port]);
    await withAll.close(); // gone after the gateway learned what it offers
    await waitFor(() => gw.gateway.relay.stats().backends[0]!.idle === 0, 10_000);
    const c = await client(gw.port);
    await c.cmd('EHLO client.test');
    const mail = await c.cmd(`MAIL FROM:<${UTF8_SENDER}> SMTPUTF8`);
    expect(mail.code).toBe(451);
    expect(without.mails).toEqual([]);
    // what the other backend can take still goes there
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect(without.mails).toEqual([{ address: 'a@example.org', args: {} }]);
  });
});
