/**
 * A real backend MTA (smtp-server) with what the relay tests vary: STARTTLS with a given
 * certificate, implicit TLS (smtps://), and which extensions it offers (8BITMIME, SMTPUTF8, SIZE).
 * It records every MAIL (with its parameters), every message, and whether each came over TLS.
 */
import fs from 'node:fs';
import type net from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export interface SmtpBackendOptions {
  /** Certificate for STARTTLS (or for smtps:// with implicitTls); without it no STARTTLS is offered. */
  tls?: { key: string; cert: string };
  /** smtps://: TLS from the first byte (needs tls). */
  implicitTls?: boolean;
  hide8BITMIME?: boolean;
  hideSMTPUTF8?: boolean;
  /** The SIZE limit it announces (and enforces). */
  size?: number;
}

export interface BackendMessage {
  from: string;
  to: string[];
  raw: Buffer;
  /** The session was encrypted when the message arrived. */
  secure: boolean;
  /** The MAIL parameters (smtp-server's args: { BODY: '8BITMIME', SMTPUTF8: true, ... }). */
  mailArgs: Record<string, unknown>;
}

export interface SmtpBackend {
  port: number;
  /** Every MAIL FROM: address and parameters. */
  mails: Array<{ address: string; args: Record<string, unknown> }>;
  messages: BackendMessage[];
  connections: number;
  /** TLS sessions set up (STARTTLS or implicit). */
  handshakes: number;
  close(): Promise<void>;
}

export async function startSmtpBackend(opts: SmtpBackendOptions = {}): Promise<SmtpBackend> {
  const b: SmtpBackend = { port: 0, mails: [], messages: [], connections: 0, handshakes: 0, close: async () => {} };
  const tls = opts.tls ? { key: fs.readFileSync(opts.tls.key), cert: fs.readFileSync(opts.tls.cert) } : undefined;
  const options: SMTPServerOptions = {
    authOptional: true,
    disabledCommands: ['AUTH', ...(tls ? [] : ['STARTTLS'])],
    hideSTARTTLS: !tls,
    logger: false,
    closeTimeout: 100,
    onConnect(_s, cb) {
      b.connections++;
      cb();
    },
    onSecure(_socket, _s, cb) {
      b.handshakes++;
      cb();
    },
    onMailFrom(address, _s, cb) {
      b.mails.push({ address: address.address, args: (address.args || {}) as Record<string, unknown> });
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope;
        b.messages.push({
          from: env.mailFrom ? env.mailFrom.address : '',
          to: env.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          secure: session.secure,
          mailArgs: (env.mailFrom ? env.mailFrom.args || {} : {}) as Record<string, unknown>,
        });
        cb(null, 'Ok: queued');
      });
    },
  };
  if (tls) Object.assign(options, tls);
  if (opts.implicitTls) options.secure = true;
  if (opts.hide8BITMIME) options.hide8BITMIME = true;
  if (opts.hideSMTPUTF8) options.hideSMTPUTF8 = true;
  if (opts.size !== undefined) options.size = opts.size;
  const server = new SMTPServer(options);
  server.on('error', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.server.address() as net.AddressInfo).port;
  b.close = () => new Promise<void>((r) => server.close(() => r()));
  return b;
}
