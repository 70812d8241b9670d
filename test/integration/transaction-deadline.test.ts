/**
 * server.max_transaction_time: a client that trickles its message (or a command) one byte a
 * second never trips the idle timeout, but is cut off with 421 once its transaction is older
 * than the deadline, and nothing of the message reaches the backend. A client idle between
 * transactions, and one waiting for a slow backend's final reply, are not cut off.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startBdatBackend } from '../helpers/bdat-backend.js';
import { SmtpTestClient, startBackend, startTestGateway, type TestGateway } from '../helpers/smtp.js';

const DEADLINE_S = 2;
const SERVER = `  max_transaction_time: ${DEADLINE_S}s\n`; // idle_timeout: 30s (startTestGateway)

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function gateway(relayPort: number): Promise<TestGateway> {
  const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${relayPort}`, relayTimeout: '20s', body: '', proxy: '[]', server: SERVER });
  cleanups.push(() => gw.close());
  return gw;
}

async function client(port: number): Promise<SmtpTestClient> {
  const c = await SmtpTestClient.connect(port);
  cleanups.push(() => c.close());
  return c;
}

/** Writes `text` one byte a second until it is out or the connection closed; returns the bytes written. */
function trickle(c: SmtpTestClient, text: string): { stop(): void; written(): number } {
  let i = 0;
  const timer = setInterval(() => {
    if (c.ended || i >= text.length) {
      clearInterval(timer);
      return;
    }
    c.socket.write(text[i++]!);
  }, 1000);
  return { stop: () => clearInterval(timer), written: () => i };
}

describe('server.max_transaction_time', () => {
  it('cuts off a client trickling its message one byte a second with 421; the backend gets nothing', async () => {
    const backend = await startBackend();
    cleanups.push(() => backend.close());
    const gw = await gateway(backend.port);
    const c = await client(gw.port);
    expect((await c.cmd('EHLO trickle.test')).code).toBe(250);
    expect((await c.cmd('MAIL FROM:<slow@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<rcpt@example.net>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(354);
    const t = trickle(c, `Subject: slow\r\n\r\n${'x'.repeat(100)}\r\n.\r\n`);
    cleanups.push(() => t.stop());
    // the idle timeout (30 s) never fires for it: each byte is activity
    const cut = await c.reply(15_000);
    expect(cut.code).toBe(421);
    expect(cut.text).toMatch(new RegExp(`^4\\.4\\.2 Transaction took longer than ${DEADLINE_S} s, closing the connection \\[\\w+@gw\\.test\\]$`));
    expect(await c.closed()).toBe(true);
    expect(t.written()).toBeLessThan(20);
    expect(backend.messages).toEqual([]);
    expect(gw.logs.some((l) => l.msg === 'transaction took too long: client cut off (server.max_transaction_time)')).toBe(true);
  });

  it('cuts off a command trickled one byte a second', async () => {
    const backend = await startBackend();
    cleanups.push(() => backend.close());
    const gw = await gateway(backend.port);
    const c = await client(gw.port);
    expect((await c.cmd('EHLO trickle.test')).code).toBe(250);
    const t = trickle(c, 'MAIL FROM:<slow-command@example.org>\r\n');
    cleanups.push(() => t.stop());
    const cut = await c.reply(15_000);
    expect(cut.code).toBe(421);
    expect(cut.text).toMatch(/^4\.4\.2 Transaction took longer/);
    expect(await c.closed()).toBe(true);
  });

  it('does not cut off a client that is idle between transactions, nor one waiting for a slow backend', async () => {
    // the backend holds its final reply past the deadline: the client waits for us, and the
    // transaction ends with that reply
    const backend = await startBdatBackend({ chunking: false, holdFinalMs: (DEADLINE_S + 1) * 1000 });
    cleanups.push(() => backend.close());
    const gw = await gateway(backend.port);
    const c = await client(gw.port);
    expect((await c.cmd('EHLO patient.test')).code).toBe(250);
    expect((await c.cmd('MAIL FROM:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<b@example.net>')).code).toBe(250);
    expect((await c.data('Subject: waits\r\n\r\nhi\r\n')).code).toBe(250);
    expect(backend.messages).toHaveLength(1);
    // idle past the deadline between transactions: only the idle timeout applies there
    await new Promise((r) => setTimeout(r, (DEADLINE_S + 0.5) * 1000));
    expect(c.ended).toBe(false);
    expect((await c.cmd('NOOP')).code).toBe(250);
  });
});
