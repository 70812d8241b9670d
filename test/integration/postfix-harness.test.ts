/**
 * The private-Postfix harness works: a message sent through its smtpd with a PROXY header
 * naming 192.0.2.7 (and one naming 2001:db8::7) reaches the test's backend with that client
 * address in Postfix's Received header; stop leaves no process behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostfixInstance } from '../helpers/postfix.js';
import { requireProgram } from '../helpers/programs.js';
import { proxyV1, sendMail, startBackend, type Backend } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const ok = requireProgram('postfix', { pkg: 'postfix', purpose: 'the Postfix harness tests', root: true });

describe.skipIf(!ok)('private Postfix instance', () => {
  let backend: Backend;
  let pf: PostfixInstance;

  beforeAll(async () => {
    backend = await startBackend();
    pf = await PostfixInstance.start({ relayPort: backend.port });
  });

  afterAll(async () => {
    await pf?.stop();
    await backend?.close();
  });

  const dump = () => `--- ${pf.maillog} ---\n${pf.log()}`;

  it('is configured as asked', () => {
    expect(pf.postconf('smtpd_upstream_proxy_protocol')).toBe('haproxy');
    expect(pf.postconf('relayhost')).toBe(`[127.0.0.1]:${backend.port}`);
    expect(pf.postconf('queue_directory')).toBe(`${pf.dir}/queue`);
  });

  it.each([
    ['192.0.2.7', '[192.0.2.7]'],
    ['2001:db8::7', '[IPv6:2001:db8::7]'],
  ])('relays a message from PROXY client %s to the backend', async (client, shown) => {
    const before = backend.messages.length;
    const to = `rcpt-${before}@example.net`;
    const replies = await sendMail(pf.port, { preface: proxyV1(client), to: [to], body: `Subject: via postfix ${client}\r\n\r\nhello\r\n` });
    expect(replies.map((r) => r.code), dump()).toEqual([220, 250, 250, 250, 250, 221]);
    try {
      await waitFor(() => backend.messages.length > before, 15_000);
    } catch {
      throw new Error(`the message did not reach the backend\n${dump()}`);
    }
    const msg = backend.messages[before]!;
    expect(msg.to).toEqual([to]);
    expect(msg.from).toBe('sender@example.org');
    const received = msg.raw.toString('latin1').split(/\r?\n(?![ \t])/)[0]!;
    expect(received, dump()).toMatch(new RegExp(`^Received: from client\\.test \\(unknown ${shown.replace(/[[\].]/g, '\\$&')}\\)`));
    expect(pf.log()).toContain(`client=unknown[${client}]`);
  });

  it('stops cleanly: status says not running, no process left', async () => {
    expect((await pf.status()).running).toBe(true);
    expect(pf.processes().length).toBeGreaterThan(0);
    await pf.stop({ keep: true });
    const st = await pf.status();
    expect(st.running, st.output).toBe(false);
    expect(pf.processes()).toEqual([]);
    await pf.stop(); // removes the dir; idempotent
  });
});
