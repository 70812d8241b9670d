/**
 * Per-session bounds: transactions, errors and junk commands. A client that pipelines past them
 * gets a clear 421 and loses its connection, and the gateway keeps serving everyone else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyV1, sendMail, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

/** Writes every line at once (pipelining) and collects replies until the connection closes. */
async function pipeline(c: SmtpTestClient, lines: string[]): Promise<Array<{ code: number; text: string }>> {
  c.socket.write(lines.map((l) => `${l}\r\n`).join(''));
  const out: Array<{ code: number; text: string }> = [];
  for (;;) {
    const r = await c.reply();
    if (r.code === 0) return out;
    out.push(r);
    if (out.length >= lines.length) return out;
  }
}

describe('per-session limits', () => {
  let backend: Backend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      server: '  max_transactions: 5\n  max_errors: 4\n  max_junk_commands: 6\n',
      body: 'series: {}\n',
    });
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
  });

  it.each(['192.0.2.1', '2001:db8::1'])('MAIL past max_transactions is a 421 and the connection closes (%s)', async (ip) => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    const lines = ['EHLO many.test'];
    for (let i = 0; i < 8; i++) lines.push('RSET', `MAIL FROM:<a@d${i}.example>`);
    const replies = await pipeline(c, lines);
    const mails = replies.filter((_, i) => i > 0 && i % 2 === 0);
    expect(mails.slice(0, 5).map((r) => r.code)).toEqual([250, 250, 250, 250, 250]);
    expect(replies.at(-1)).toMatchObject({ code: 421, text: expect.stringMatching(/^4\.7\.0 Too many transactions in one session \(at most 5\).*\[[0-9a-f]{12}@gw\.test\]$/) });
    expect(await c.closed()).toBe(true);
    // the next client is served
    expect((await sendMail(gw.port, { preface: proxyV1(ip) })).at(-2)?.code).toBe(250);
  });

  it('error replies past max_errors close the connection with a 421', async () => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('198.51.100.7') });
    const lines = ['EHLO errors.test', 'MAIL FROM:<a@x.example>'];
    for (let i = 0; i < 10; i++) lines.push(`RCPT TO:<unknown${i}@example.net>`);
    const replies = await pipeline(c, lines);
    expect(replies.slice(2, 6).map((r) => r.code)).toEqual([550, 550, 550, 550]);
    expect(replies[6]!.code).toBe(550);
    expect(replies[7]).toMatchObject({ code: 421, text: expect.stringMatching(/^4\.7\.0 Too many errors in one session/) });
    expect(await c.closed()).toBe(true);
  });

  it('junk commands past max_junk_commands count as errors', async () => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('2001:db8:5::7') });
    const lines = ['EHLO junk.test'];
    for (let i = 0; i < 20; i++) lines.push('NOOP');
    const replies = await pipeline(c, lines);
    // EHLO + 5 NOOPs are within 6; NOOPs 6-9 are answered but count as errors 1-4, and the
    // tenth, error 5, gets the 421 instead of its 250
    expect(replies).toHaveLength(11);
    expect(replies.slice(0, 10).every((r) => r.code === 250)).toBe(true);
    expect(replies.at(-1)).toMatchObject({ code: 421, text: expect.stringMatching(/Too many errors/) });
    expect(await c.closed()).toBe(true);
  });
});

describe('the eviction attack on a string series', () => {
  it('a client pipelining new sender domains cannot wipe the count of a domain already over its limit', async () => {
    const backend = await startBackend();
    const gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      body: `series:
  senders: { type: string, interval: 60, windows: 2, max_keys: 1000 }
record:
  - { on: mail, series: senders, key: "{mail_from_domain}" }
policies:
  - { name: sender-flood, on: mail, series: senders, key: "{mail_from_domain}", windows: [0, 1], above: 5, action: tempfail }
`,
    });
    try {
      const spam = await SmtpTestClient.connect(gw.port, { preface: proxyV1('203.0.113.5') });
      const first = await pipeline(spam, ['EHLO spam.test', ...Array.from({ length: 6 }, () => ['RSET', 'MAIL FROM:<x@spam.example>']).flat()]);
      expect(first.at(-1)!.code).toBe(451);
      spam.close();
      // the attack: 1,000 one-shot sender domains, RSET + MAIL pipelined, from IPv4 and IPv6 clients
      for (let c = 0; c < 10; c++) {
        const client = await SmtpTestClient.connect(gw.port, { preface: proxyV1(c % 2 ? `2001:db8:a::${c}` : `198.51.100.${c}`) });
        const lines = ['EHLO attack.test'];
        for (let i = 0; i < 100; i++) lines.push('RSET', `MAIL FROM:<a@d${c * 100 + i}.example>`);
        const replies = await pipeline(client, lines);
        expect(replies.filter((r) => r.code === 250).length).toBeGreaterThan(100);
        client.close();
      }
      expect(await gw.gateway.store.count('senders', 'spam.example', 0, 1)).toBe(6);
      const again = await SmtpTestClient.connect(gw.port, { preface: proxyV1('203.0.113.5') });
      await again.cmd('EHLO spam.test');
      expect((await again.cmd('MAIL FROM:<x@spam.example>')).code).toBe(451);
      again.close();
    } finally {
      await gw.close();
      await backend.close();
    }
  });
});
