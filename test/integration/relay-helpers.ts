// Shared by the test/integration/relay-{smtp,pool,frontend,dir}.test.ts files. Importing this
// module registers the afterEach that runs the `cleanups`.
import net, { type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { afterEach, expect } from 'vitest';
import { RelayError } from '../../src/errors.js';
import { createRelay } from '../../src/smtp/relay/create.js';
import type { Relay, RelayTransaction } from '../../src/smtp/relay/types.js';
import { smtpRelayOptions } from '../helpers/relay.js';

export const HOST = '127.0.0.1';
export const REJECTED = 'nobody@backend.test';

// ------------------------------------------------------------------------------------------
// helpers

export const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});


export interface Received {
  from: string;
  to: string[];
  data: Buffer;
  mailArgs: unknown;
}

export interface Backend {
  port: number;
  received: Received[];
  mailFroms: string[];
  connections: number;
  closes: number;
}

export async function startBackend(extra: Partial<SMTPServerOptions> = {}): Promise<Backend> {
  const b: Backend = { port: 0, received: [], mailFroms: [], connections: 0, closes: 0 };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    closeTimeout: 100,
    size: 10 * 1024 * 1024,
    onConnect(_session, cb) {
      b.connections++;
      cb();
    },
    onClose() {
      b.closes++;
    },
    onMailFrom(address, _session, cb) {
      b.mailFroms.push(address.address);
      cb();
    },
    onRcptTo(address, _session, cb) {
      if (address.address === REJECTED) {
        cb(Object.assign(new Error('No such user here'), { responseCode: 550 }));
        return;
      }
      cb();
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => undefined);
      stream.on('end', () => {
        const env = session.envelope;
        b.received.push({
          from: env.mailFrom ? env.mailFrom.address : '',
          to: env.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
          mailArgs: env.mailFrom ? env.mailFrom.args : false,
        });
        cb(null, 'Queued as TEST');
      });
    },
    ...extra,
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  b.port = (server.server.address() as AddressInfo).port;
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return b;
}

export interface RawServer {
  port: number;
  /** Client→server bytes, all connections concatenated. */
  bytes(): Buffer;
}

export async function startRawServer(onSocket: (socket: net.Socket) => void): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const chunks: Buffer[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (c: Buffer) => chunks.push(c));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, bytes: () => Buffer.concat(chunks) };
}

/** A TCP tap in front of `targetPort` that records what the relay sends on the wire. */
export async function startTap(targetPort: number): Promise<RawServer> {
  return startRawServer((client) => {
    const upstream = net.connect(targetPort, HOST);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
}

export type ScriptMode =
  | 'silent'
  | 'close-mid-data'
  | 'close-after-dot'
  | 'silent-after-dot'
  | 'ehlo-refused'
  | 'greeting-554'
  | 'drop-second-mail';

/** A hand-written SMTP backend that misbehaves in a chosen way. */
export async function startScripted(mode: ScriptMode): Promise<RawServer & { commands: string[] }> {
  const commands: string[] = [];
  const raw = await startRawServer((sock) => {
    if (mode === 'silent') return;
    if (mode === 'greeting-554') {
      sock.end('554 go away\r\n');
      return;
    }
    sock.write('220 scripted ESMTP\r\n');
    let buf = '';
    let inData = false;
    let mails = 0;
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (inData) {
        if (mode === 'close-mid-data') {
          sock.destroy();
          return;
        }
        if (buf.includes('\r\n.\r\n')) {
          if (mode === 'close-after-dot') sock.destroy();
          // silent-after-dot: never answer
        }
        return;
      }
      for (let i = buf.indexOf('\r\n'); i >= 0 && !inData; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        commands.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') sock.write(mode === 'ehlo-refused' ? '502 5.5.1 no ESMTP here\r\n' : '250-scripted\r\n250 8BITMIME\r\n');
        else if (verb === 'DATA') {
          sock.write('354 go ahead\r\n');
          inData = true;
        } else if (verb === 'QUIT') sock.end('221 bye\r\n');
        else if (verb === 'MAIL' && ++mails === 2 && mode === 'drop-second-mail') {
          sock.destroy();
          return;
        } else sock.write('250 ok\r\n');
      }
    });
  });
  return { ...raw, commands };
}

export function smtpRelay(port: number, extra: { timeoutMs?: number; poolSize?: number } = {}): Relay {
  const relay = createRelay(smtpRelayOptions(port, { timeoutMs: extra.timeoutMs ?? 5000, poolSize: extra.poolSize ?? 2 }));
  cleanups.push(() => relay.close());
  return relay;
}

export function msg(...parts: Array<string | Buffer>): Readable {
  return Readable.from(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}

export async function expectRelayError4xx(p: Promise<unknown>): Promise<RelayError> {
  const err = await p.then(
    (v) => {
      throw new Error(`expected a RelayError, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RelayError);
  const code = (err as RelayError).responseCode;
  expect(code).toBeGreaterThanOrEqual(400);
  expect(code).toBeLessThan(500);
  return err as RelayError;
}

export async function envelope(tx: RelayTransaction, from: string, to: string[]): Promise<void> {
  expect((await tx.mailFrom(from)).code).toBe(250);
  for (const r of to) expect((await tx.rcptTo(r)).code).toBe(250);
}

export const PREFIX = 'Received: from client.test ([192.0.2.1]) by gw.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n';

// ------------------------------------------------------------------------------------------
