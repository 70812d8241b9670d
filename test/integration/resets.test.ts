/**
 * Clients that leave with a TCP reset (SO_LINGER 0, `socket.resetAndDestroy()`) at every step
 * of a session, over IPv4 and IPv6 client addresses (PROXY), against a DATA-only and a CHUNKING
 * backend, and clients that send garbage after STARTTLS or talk after being refused: each one
 * closes only its own connection, and the same gateway process then serves the next client.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBdatBackend, type BdatBackend } from '../helpers/bdat-backend.js';
import { makeCertificate, type TestCertificate } from '../helpers/cert.js';
import { proxyV1, sendMail, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const STEPS = ['banner', 'ehlo', 'mail', 'rcpt', 'mid-data', 'end-of-data', 'after-reply'] as const;
type Step = (typeof STEPS)[number];

/** Runs a session up to `step`, then resets the connection. */
async function resetAt(port: number, step: Step, client: string): Promise<void> {
  const c = await SmtpTestClient.connect(port, { preface: proxyV1(client) });
  expect(c.greeting.code).toBe(220);
  const go = async (): Promise<void> => {
    if (step === 'banner') return;
    expect((await c.cmd('EHLO reset.test')).code).toBe(250);
    if (step === 'ehlo') return;
    expect((await c.cmd('MAIL FROM:<a@x.example>')).code).toBe(250);
    if (step === 'mail') return;
    expect((await c.cmd('RCPT TO:<rcpt@example.net>')).code).toBe(250);
    if (step === 'rcpt') return;
    expect((await c.cmd('DATA')).code).toBe(354);
    c.socket.write(`Subject: reset\r\n\r\n${'half a message\r\n'.repeat(200)}`);
    if (step === 'mid-data') {
      await new Promise((r) => setTimeout(r, 20));
      return;
    }
    c.socket.write('.\r\n');
    if (step === 'end-of-data') return;
    expect((await c.reply()).code).toBe(250);
  };
  try {
    await go();
  } finally {
    c.socket.resetAndDestroy();
  }
}

function lastCode(replies: Array<{ code: number }>): number {
  return replies.at(-2)?.code ?? 0; // the reply to the end of data (QUIT's 221 is last)
}

describe.each([
  ['DATA backend', 'data'],
  ['CHUNKING backend', 'bdat'],
] as const)('TCP resets at every step (%s)', (_name, kind) => {
  let gw: TestGateway;
  let backend: Backend | BdatBackend;

  beforeAll(async () => {
    backend = kind === 'data' ? await startBackend() : await startBdatBackend();
    gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: 'series: {}\n' });
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
  });

  it.each(STEPS)('a reset %s closes only that connection', async (step) => {
    for (const client of ['192.0.2.10', '2001:db8::10']) {
      await resetAt(gw.port, step, client);
      const next = await sendMail(gw.port, { preface: proxyV1(client === '192.0.2.10' ? '192.0.2.11' : '2001:db8::11') });
      expect(lastCode(next)).toBe(250);
    }
  });

  it('leaves no session or backend transaction behind', async () => {
    await waitFor(() => gw.gateway.front.openSessions() === 0 && gw.gateway.relay.stats().active === 0);
    // client resets are not the gateway's faults: nothing at warn or error level
    expect(gw.logs.filter((l) => (l.level as number) >= 40).map((l) => l.msg)).toEqual([]);
  });
});

describe('TLS and refusals', () => {
  let cert: TestCertificate;
  let backend: Backend;
  let gw: TestGateway;
  let refusing: TestGateway;

  beforeAll(async () => {
    cert = makeCertificate('gw.test');
    backend = await startBackend();
    gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      server: `  tls: { key: ${JSON.stringify(cert.key)}, cert: ${JSON.stringify(cert.cert)} }`,
      body: 'series: {}\n',
    });
    // No PROXY trust: the loopback client is itself the client, and a policy refuses it.
    refusing = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      proxy: '[]',
      body: 'policies:\n  - { name: deny, on: connect, client: [127.0.0.0/8], action: reject }\n',
    });
  });
  afterAll(async () => {
    await gw?.close();
    await refusing?.close();
    await backend?.close();
    cert?.remove();
  });

  async function serves(port: number): Promise<void> {
    expect(lastCode(await sendMail(port, { preface: proxyV1('198.51.100.20') }))).toBe(250);
  }

  it('plaintext garbage after STARTTLS closes that connection only', async () => {
    for (const client of ['198.51.100.1', '2001:db8:1::1']) {
      const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(client) });
      expect((await c.cmd('EHLO tls.test')).code).toBe(250);
      expect((await c.cmd('STARTTLS')).code).toBe(220);
      c.socket.write('EHLO this is not a TLS handshake\r\nMAIL FROM:<x@y>\r\n');
      expect(await c.closed()).toBe(true);
      c.close();
      await serves(gw.port);
    }
  });

  it('a reset in the middle of the TLS handshake closes that connection only', async () => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('198.51.100.2') });
    expect((await c.cmd('EHLO tls.test')).code).toBe(250);
    expect((await c.cmd('STARTTLS')).code).toBe(220);
    c.socket.removeAllListeners('data');
    const secure = tls.connect({ socket: c.socket, rejectUnauthorized: false, servername: 'gw.test' });
    secure.on('error', () => undefined);
    c.socket.resetAndDestroy();
    await serves(gw.port);
  });

  it('a reset after a completed TLS handshake and MAIL closes that connection only', async () => {
    const raw = net.connect(gw.port, '127.0.0.1');
    await new Promise<void>((r) => raw.once('connect', r));
    raw.write(proxyV1('2001:db8:2::2'));
    const read = (s: net.Socket | tls.TLSSocket): Promise<string> => new Promise((r) => s.once('data', (d: Buffer) => r(d.toString('latin1'))));
    expect(await read(raw)).toMatch(/^220 /);
    raw.write('EHLO tls.test\r\n');
    await read(raw);
    raw.write('STARTTLS\r\n');
    expect(await read(raw)).toMatch(/^220 /);
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'gw.test' });
    await new Promise<void>((r) => secure.once('secureConnect', r));
    secure.write('EHLO tls.test\r\n');
    await read(secure);
    secure.write('MAIL FROM:<a@x.example>\r\n');
    expect(await read(secure)).toMatch(/^250 /);
    secure.on('error', () => undefined);
    raw.resetAndDestroy();
    await serves(gw.port);
  });

  it('a refused client that sends a PROXY header and resets closes that connection only', async () => {
    const c = await SmtpTestClient.connect(refusing.port);
    expect(c.greeting.code).toBe(554);
    c.socket.write('PROXY x\r\n');
    c.socket.write('PROXY TCP4 203.0.113.9 127.0.0.1 4000 25\r\n');
    await new Promise((r) => setTimeout(r, 20));
    c.socket.resetAndDestroy();
    // still alive: the next client is refused by the same policy, with a reply
    const again = await SmtpTestClient.connect(refusing.port);
    expect(again.greeting.code).toBe(554);
    again.close();
    await serves(gw.port);
  });

  it('clients that reset before the connection is set up are dropped without a session', async () => {
    const before = gw.gateway.recorder.storeFailureCount();
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        const s = net.connect(gw.port, '127.0.0.1');
        s.on('error', () => undefined);
        await new Promise<void>((r) => s.once('connect', r));
        s.resetAndDestroy();
      }),
    );
    await serves(gw.port);
    await waitFor(() => gw.gateway.front.openSessions() === 0);
    expect(gw.gateway.recorder.storeFailureCount()).toBe(before);
  });
});
