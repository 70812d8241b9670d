/**
 * STARTTLS end to end with a throwaway self-signed certificate (made by openssl): AUTH is
 * offered only inside TLS, works there, and the mail is relayed with the right Received line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startTestGateway, proxyV1, type TestGateway } from '../helpers/smtp.js';

/** A line-based SMTP dialog on a socket that can be swapped for its TLS upgrade. */
class Dialog {
  private buf = '';
  private wake: (() => void) | undefined;
  private ended = false;

  constructor(public socket: net.Socket | tls.TLSSocket) {
    this.attach(socket);
  }

  private attach(s: net.Socket | tls.TLSSocket): void {
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      this.buf += d;
      this.wake?.();
    });
    s.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    s.on('error', () => undefined);
  }

  async reply(): Promise<{ code: number; text: string }> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const m = /(?:^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(this.buf);
      if (m) {
        const end = m.index + m[0].length;
        const text = this.buf.slice(0, end);
        this.buf = this.buf.slice(end);
        return { code: Number(m[1]), text };
      }
      if (this.ended || Date.now() > deadline) return { code: 0, text: this.buf };
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  async cmd(line: string): Promise<{ code: number; text: string }> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  /** Upgrades to TLS (after the server's 220 to STARTTLS). */
  async startTls(): Promise<tls.TLSSocket> {
    const raw = this.socket as net.Socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'gw.test' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
    return secure;
  }
}

describe('STARTTLS', () => {
  let dir: string;
  let gw: TestGateway;
  let backend: SMTPServer;
  const received: Array<{ user: string; raw: string }> = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'auditgate-tls-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=gw.test'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.error?.message ?? r.stderr}`);

    backend = new SMTPServer({
      authOptional: true,
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      closeTimeout: 100,
      onAuth(auth, _s, cb) {
        if (auth.username === 'alice' && auth.password === 'secret') cb(null, { user: 'alice' });
        else cb(Object.assign(new Error('5.7.8 Invalid credentials'), { responseCode: 535 }));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          received.push({ user: typeof session.user === 'string' ? session.user : '', raw: Buffer.concat(chunks).toString('utf8') });
          cb(null, 'Ok: queued');
        });
      },
    });
    await new Promise<void>((res) => backend.listen(0, '127.0.0.1', res));
    const port = (backend.server.address() as net.AddressInfo).port;
    gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${port}`,
      server: `  tls: { key: ${JSON.stringify(key)}, cert: ${JSON.stringify(cert)} }\n  auth: { enabled: true }`,
      body: 'series: {}\n',
    });
  });

  afterAll(async () => {
    await gw?.close();
    await new Promise<void>((res) => (backend ? backend.close(() => res()) : res()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers AUTH only after STARTTLS; inside TLS it authenticates and relays with ESMTPSA', async () => {
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', r));
    const d = new Dialog(sock);
    onTestFinished(() => {
      d.socket.destroy();
    });
    sock.write(proxyV1('192.0.2.60'));
    expect((await d.reply()).code).toBe(220);
    const plainEhlo = await d.cmd('EHLO client.test');
    expect(plainEhlo.text).toMatch(/STARTTLS/);
    // RFC 4954 §4: no plaintext mechanism is advertised outside TLS
    expect(plainEhlo.text).not.toMatch(/AUTH/);
    // AUTH in clear text is refused by smtp-server before anything reaches the backend
    const early = await d.cmd(`AUTH PLAIN ${Buffer.from('\0alice\0secret').toString('base64')}`);
    expect(early.code).toBeGreaterThanOrEqual(500);

    expect((await d.cmd('STARTTLS')).code).toBe(220);
    const secure = await d.startTls();
    expect(secure.getPeerCertificate().subject?.CN).toBe('gw.test');
    const ehlo = await d.cmd('EHLO client.test');
    expect(ehlo.code).toBe(250);
    expect(ehlo.text).toMatch(/AUTH PLAIN LOGIN/);
    expect(ehlo.text).not.toMatch(/STARTTLS/);
    expect((await d.cmd(`AUTH PLAIN ${Buffer.from('\0alice\0secret').toString('base64')}`)).code).toBe(235);
    expect((await d.cmd('MAIL FROM:<alice@example.org>')).code).toBe(250);
    expect((await d.cmd('RCPT TO:<bob@example.net>')).code).toBe(250);
    expect((await d.cmd('DATA')).code).toBe(354);
    const done = await d.cmd('Subject: over tls\r\n\r\nhi\r\n.');
    expect(done.code).toBe(250);
    expect((await d.cmd('QUIT')).code).toBe(221);
    secure.destroy();

    expect(received).toHaveLength(1);
    expect(received[0]!.user).toBe('alice');
    expect(received[0]!.raw).toMatch(/^Received: from client\.test \(\[192\.0\.2\.60\]\)\r\n\tby gw\.test \(auditgate\) with ESMTPSA id [0-9a-f]{12}/);
  });
});
