/** Test helpers: a raw SMTP client, a real backend (smtp-server), a gateway on port 0. */
import net from 'node:net';
import { Writable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import { pino } from 'pino';
import { parseConfigText } from '../../src/config/load.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/gateway.js';
import type { Clock } from '../../src/series/clock.js';

export interface Reply {
  code: number;
  text: string;
}

export class SmtpTestClient {
  private buf = '';
  private waiters: Array<() => void> = [];
  ended = false;
  greeting!: Reply;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Connects; `preface` (a PROXY header) is written first. Waits for the greeting. */
  static async connect(port: number, opts: { host?: string; preface?: string | Buffer } = {}): Promise<SmtpTestClient> {
    const socket = net.connect(port, opts.host ?? '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new SmtpTestClient(socket);
    if (opts.preface) socket.write(opts.preface);
    c.greeting = await c.reply();
    return c;
  }

  /** Reads one (possibly multi-line) reply; code 0 when the connection closed first. */
  async reply(timeoutMs = 10_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.buf.split('\r\n');
      let text: string[] = [];
      for (let i = 0; i < lines.length - 1; i++) {
        const l = lines[i]!;
        text.push(l.slice(4));
        if (/^\d{3} /.test(l) || /^\d{3}$/.test(l)) {
          this.buf = lines.slice(i + 1).join('\r\n');
          return { code: Number(l.slice(0, 3)), text: text.join('\n') };
        }
        if (!/^\d{3}-/.test(l)) text = [];
      }
      if (this.ended) return { code: 0, text: this.buf };
      if (Date.now() > deadline) throw new Error(`no SMTP reply within ${timeoutMs} ms (buffer: ${JSON.stringify(this.buf)})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async cmd(line: string): Promise<Reply> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  /** DATA, then the raw body (already CRLF, dot-stuffed by the caller if needed) and the terminator. */
  async data(body: string): Promise<Reply> {
    const r = await this.cmd('DATA');
    if (r.code !== 354) return r;
    this.socket.write(body.endsWith('\r\n') ? `${body}.\r\n` : `${body}\r\n.\r\n`);
    return this.reply();
  }

  async closed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.ended;
  }

  close(): void {
    this.socket.destroy();
  }
}

export function proxyV1(src: string, srcPort = 40000): string {
  const v6 = src.includes(':');
  return `PROXY ${v6 ? 'TCP6' : 'TCP4'} ${src} ${v6 ? '::1' : '127.0.0.1'} ${srcPort} 2525\r\n`;
}

export interface Backend {
  port: number;
  messages: Array<{ from: string; to: string[]; raw: Buffer; remote: string }>;
  connections: number;
  server: SMTPServer;
  close(): Promise<void>;
}

/** A real backend MTA: refuses RCPTs whose local part starts with "unknown", records messages. Port 0: any free one. */
export async function startBackend(port = 0): Promise<Backend> {
  const b: Backend = { port: 0, messages: [], connections: 0, server: undefined as unknown as SMTPServer, close: async () => {} };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onConnect(_s, cb) {
      b.connections++;
      cb();
    },
    onRcptTo(addr, _s, cb) {
      if (addr.address.startsWith('unknown')) return cb(Object.assign(new Error('5.1.1 No such user here'), { responseCode: 550 }));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        b.messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          remote: session.remoteAddress,
        });
        cb(null, 'Ok: queued as TEST');
      });
    },
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  b.port = (server.server.address() as net.AddressInfo).port;
  b.server = server;
  b.close = () => new Promise<void>((r) => server.close(() => r()));
  return b;
}

export interface TestGateway {
  gateway: Gateway;
  port: number;
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * Starts a gateway from YAML (listen 127.0.0.1:0, PROXY trusted from loopback, the given
 * relay). `body` holds the series / record / policies sections; `relayExtra` more relay keys
 * (indented two spaces).
 */
export async function startTestGateway(opts: {
  relay: string;
  body: string;
  clock?: Clock;
  server?: string;
  store?: string;
  proxy?: string;
  admin?: string;
  relayTimeout?: string;
  relayExtra?: string;
  banSync?: GatewayOptions['banSync'];
  alertDelivery?: GatewayOptions['alertDelivery'];
}): Promise<TestGateway> {
  const yaml = `server:
  hostname: gw.test
  listen: ["127.0.0.1:0"]
  proxy_protocol: ${opts.proxy ?? '[127.0.0.0/8]'}
  idle_timeout: 30s
${opts.server ?? ''}
relay:
  url: ${opts.relay}
  timeout: ${opts.relayTimeout ?? '2s'}
${opts.relayExtra ?? ''}
admin: ${opts.admin ?? '{ enabled: false }'}
log: { level: debug }
${opts.store ?? ''}
${opts.body}
`;
  const config = parseConfigText(yaml, 'test-gateway.yaml');
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const gopts: GatewayOptions = { config, logger };
  if (opts.clock) gopts.clock = opts.clock;
  if (opts.banSync) gopts.banSync = opts.banSync;
  if (opts.alertDelivery) gopts.alertDelivery = opts.alertDelivery;
  const gateway = await startGateway(gopts);
  return { gateway, port: gateway.smtpAddresses()[0]!.port, logs, close: () => gateway.close(500) };
}

/** One full session: EHLO, MAIL, RCPTs, DATA, QUIT. Returns every reply. */
export async function sendMail(port: number, opts: { preface?: string; from?: string; to?: string[]; body?: string }): Promise<Reply[]> {
  const c = await SmtpTestClient.connect(port, opts.preface ? { preface: opts.preface } : {});
  const out: Reply[] = [c.greeting];
  try {
    if (c.greeting.code !== 220) return out;
    out.push(await c.cmd('EHLO client.test'));
    out.push(await c.cmd(`MAIL FROM:<${opts.from ?? 'sender@example.org'}>`));
    for (const t of opts.to ?? ['rcpt@example.net']) out.push(await c.cmd(`RCPT TO:<${t}>`));
    out.push(await c.data(opts.body ?? 'Subject: test\r\n\r\nhello\r\n'));
    out.push(await c.cmd('QUIT'));
  } finally {
    c.close();
  }
  return out;
}
