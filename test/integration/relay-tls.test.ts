/**
 * TLS to the backend through the gateway, with throwaway certificates (a test CA and leaves it
 * signs, and a self-signed one nobody trusts): relay.tls.mode required refuses a backend without
 * STARTTLS, with an untrusted certificate or with another name (4xx to the client, never 250,
 * and a log line that says why); with a certificate that checks out the message goes over TLS
 * and the pooled connection is reused with its TLS; opportunistic falls back to plain; smtps://.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCa, makeCertificate, type TestCa, type TestCertificate } from '../helpers/cert.js';
import { sendMail, startTestGateway, type TestGateway } from '../helpers/smtp.js';
import { startSmtpBackend, type SmtpBackend, type SmtpBackendOptions } from '../helpers/smtp-backend.js';

let ca: TestCa;
let trusted: TestCertificate;
let selfSigned: TestCertificate;

beforeAll(() => {
  ca = makeCa();
  trusted = ca.issue(['backend.test']);
  selfSigned = makeCertificate('backend.test');
});
afterAll(() => {
  ca?.remove();
  selfSigned?.remove();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function backend(opts: SmtpBackendOptions): Promise<SmtpBackend> {
  const b = await startSmtpBackend(opts);
  cleanups.unshift(() => b.close()); // after the gateway: its close waits for pooled connections
  return b;
}

async function gateway(url: string, tls: string): Promise<TestGateway> {
  const gw = await startTestGateway({ relay: url, relayExtra: `  tls: ${tls}\n`, body: '', proxy: '[]' });
  cleanups.push(() => gw.close());
  return gw;
}

const required = (servername = 'backend.test'): string => `{ mode: required, ca: "${ca.cert}", servername: ${servername} }`;

/** Reply codes of one full session (EHLO, MAIL, RCPT, DATA, QUIT). */
async function session(port: number, subject = 'tls'): Promise<number[]> {
  return (await sendMail(port, { body: `Subject: ${subject}\r\n\r\nhello\r\n` })).map((r) => r.code);
}

/** The reason the gateway logged when it found the backend unusable. */
function downReason(gw: TestGateway): string {
  const line = gw.logs.find((l) => l.msg === 'relay backend is down: skipped until it can be reached again');
  return String(line?.reason ?? '(no log line)');
}

describe('relay.tls.mode: required', () => {
  it('a backend without STARTTLS: 4xx, never 250, and the log says why', async () => {
    const b = await backend({});
    const gw = await gateway(`smtp://127.0.0.1:${b.port}`, required());
    const codes = await session(gw.port);
    expect(codes[2]).toBe(451);
    expect(codes).not.toContain(354);
    expect(codes.slice(2).every((c) => c !== 250)).toBe(true);
    expect(b.mails).toEqual([]);
    expect(downReason(gw)).toBe('the backend does not offer STARTTLS (relay.tls.mode: required)');
    // one warning, when the backend went down; the refused transactions add none
    expect((await session(gw.port))[2]).toBe(451);
    expect(gw.logs.filter((l) => (l.level as number) >= 40).map((l) => l.msg)).toEqual(['relay backend is down: skipped until it can be reached again']);
  });

  it('a backend with an untrusted certificate: 4xx, never 250, and the log says why', async () => {
    const b = await backend({ tls: selfSigned });
    const gw = await gateway(`smtp://127.0.0.1:${b.port}`, required());
    const codes = await session(gw.port);
    expect(codes[2]).toBe(451);
    expect(codes.slice(2).every((c) => c !== 250)).toBe(true);
    expect(b.mails).toEqual([]);
    expect(downReason(gw)).toMatch(/^TLS handshake with the backend failed: self[- ]signed certificate/);
  });

  it('a trusted certificate for another name: 4xx, and the log names the mismatch', async () => {
    const b = await backend({ tls: trusted });
    const gw = await gateway(`smtp://127.0.0.1:${b.port}`, required('other.test'));
    const codes = await session(gw.port);
    expect(codes[2]).toBe(451);
    expect(b.mails).toEqual([]);
    expect(downReason(gw)).toMatch(/^TLS handshake with the backend failed: Hostname\/IP does not match certificate's altnames/);
  });

  it('a certificate that checks out: the message goes over TLS, and the pooled connection is reused with its TLS', async () => {
    const b = await backend({ tls: trusted });
    const gw = await gateway(`smtp://127.0.0.1:${b.port}`, required());
    expect(await session(gw.port, 'first')).toEqual([220, 250, 250, 250, 250, 221]);
    expect(await session(gw.port, 'second')).toEqual([220, 250, 250, 250, 250, 221]);
    expect(b.messages.map((m) => m.secure)).toEqual([true, true]);
    // one connection, one handshake: the second transaction took the pooled TLS connection
    expect(b.connections).toBe(1);
    expect(b.handshakes).toBe(1);
    expect(gw.gateway.relay.stats()).toMatchObject({ opened: 1, reused: 2, failures: 0 });
  });

  it('smtps://: implicit TLS, checked the same way', async () => {
    const good = await backend({ tls: trusted, implicitTls: true });
    const gw = await gateway(`smtps://127.0.0.1:${good.port}`, required());
    expect(await session(gw.port)).toEqual([220, 250, 250, 250, 250, 221]);
    expect(good.messages.map((m) => m.secure)).toEqual([true]);

    const bad = await backend({ tls: selfSigned, implicitTls: true });
    const gw2 = await gateway(`smtps://127.0.0.1:${bad.port}`, required());
    expect((await session(gw2.port))[2]).toBe(451);
    expect(bad.mails).toEqual([]);
    expect(downReason(gw2)).toMatch(/^TLS handshake with the backend failed: self[- ]signed certificate/);
  });
});

describe('relay.tls.mode: opportunistic', () => {
  it('falls back to plain when the backend offers no STARTTLS, and says so once', async () => {
    const b = await backend({});
    const gw = await gateway(`smtp://127.0.0.1:${b.port}`, '{ mode: opportunistic }');
    expect(await session(gw.port)).toEqual([220, 250, 250, 250, 250, 221]);
    expect(await session(gw.port)).toEqual([220, 250, 250, 250, 250, 221]);
    expect(b.messages.map((m) => m.secure)).toEqual([false, false]);
    const noted = gw.logs.filter((l) => l.msg === 'relaying to this backend without TLS (relay.tls.mode: opportunistic)');
    expect(noted).toHaveLength(1);
    expect(noted[0]!.reason).toBe('the backend does not offer STARTTLS');
  });

  it('encrypts without checking the certificate when STARTTLS is offered', async () => {
    const b = await backend({ tls: selfSigned });
    const gw = await gateway(`smtp://127.0.0.1:${b.port}`, '{ mode: opportunistic }');
    expect(await session(gw.port)).toEqual([220, 250, 250, 250, 250, 221]);
    expect(b.messages.map((m) => m.secure)).toEqual([true]);
  });
});
