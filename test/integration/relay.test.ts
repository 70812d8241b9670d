import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayError } from '../../src/errors.js';
import { BackendConnection } from '../../src/smtp/relay/backend-client.js';
import { encodeData } from '../../src/smtp/relay/data-normalize.js';
import { createRelay } from '../../src/smtp/relay/create.js';
import type { Relay, RelayTransaction } from '../../src/smtp/relay/types.js';
import { waitFor } from '../helpers/wait.js';
import { freePort } from '../helpers/redis.js';
import { smtpRelayOptions } from '../helpers/relay.js';

const HOST = '127.0.0.1';
const REJECTED = 'nobody@backend.test';

// ------------------------------------------------------------------------------------------
// helpers

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});


interface Received {
  from: string;
  to: string[];
  data: Buffer;
  mailArgs: unknown;
}

interface Backend {
  port: number;
  received: Received[];
  mailFroms: string[];
  connections: number;
  closes: number;
}

async function startBackend(extra: Partial<SMTPServerOptions> = {}): Promise<Backend> {
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

interface RawServer {
  port: number;
  /** Client→server bytes, all connections concatenated. */
  bytes(): Buffer;
}

async function startRawServer(onSocket: (socket: net.Socket) => void): Promise<RawServer> {
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
async function startTap(targetPort: number): Promise<RawServer> {
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

type ScriptMode =
  | 'silent'
  | 'close-mid-data'
  | 'close-after-dot'
  | 'silent-after-dot'
  | 'ehlo-refused'
  | 'greeting-554'
  | 'drop-second-mail';

/** A hand-written SMTP backend that misbehaves in a chosen way. */
async function startScripted(mode: ScriptMode): Promise<RawServer & { commands: string[] }> {
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

function smtpRelay(port: number, extra: { timeoutMs?: number; poolSize?: number } = {}): Relay {
  const relay = createRelay(smtpRelayOptions(port, { timeoutMs: extra.timeoutMs ?? 5000, poolSize: extra.poolSize ?? 2 }));
  cleanups.push(() => relay.close());
  return relay;
}

function msg(...parts: Array<string | Buffer>): Readable {
  return Readable.from(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}

async function expectRelayError4xx(p: Promise<unknown>): Promise<RelayError> {
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

async function envelope(tx: RelayTransaction, from: string, to: string[]): Promise<void> {
  expect((await tx.mailFrom(from)).code).toBe(250);
  for (const r of to) expect((await tx.rcptTo(r)).code).toBe(250);
}

const PREFIX = 'Received: from client.test ([192.0.2.1]) by gw.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n';

// ------------------------------------------------------------------------------------------

describe('smtp relay', () => {
  it('relays a full transaction byte for byte, normalizing bare CR/LF and defeating smuggling', async () => {
    const backend = await startBackend();
    const tap = await startTap(backend.port);
    const relay = smtpRelay(tap.port);
    const body =
      'From: a@client.test\r\nSubject: relay test\r\n\r\n' +
      '.leading dot\r\n' +
      '..two dots\r\n' +
      '.\r\n' +
      'bare LF line\nbare CR line\rmixed\r\r\n' +
      'smuggle\n.\nMAIL FROM:<x@evil.test>\nRCPT TO:<victim@backend.test>\nDATA\nevil\n.\n' +
      'cr smuggle\r.\rRSET\r' +
      'end\r\n';
    // split awkwardly: CR/LF pairs and dots across chunk boundaries
    const raw = Buffer.from(body);
    const chunks = [raw.subarray(0, 47), raw.subarray(47, 48), raw.subarray(48, 97), raw.subarray(97)];

    const tx = await relay.begin({ clientAddress: '192.0.2.1', heloName: 'client.test' });
    const mail = await tx.mailFrom('a@client.test', { size: raw.length, body: '8BITMIME' });
    expect(mail.code).toBe(250);
    expect((await tx.rcptTo('b@backend.test')).code).toBe(250);
    const reply = await tx.data(msg(...chunks), PREFIX);
    expect(reply.code).toBe(250);
    expect(reply.message).toContain('Queued as TEST');
    await tx.release();

    const expectedContent = PREFIX + body.replace(/\r\n|\r|\n/g, '\r\n');
    expect(backend.received).toHaveLength(1);
    const got = backend.received[0] as Received;
    expect(got.from).toBe('a@client.test');
    expect(got.to).toEqual(['b@backend.test']);
    expect(got.data.toString('utf8')).toBe(expectedContent);
    // the smuggled MAIL FROM never became a command
    expect(backend.mailFroms).toEqual(['a@client.test']);
    // SIZE and BODY were sent because smtp-server advertises them
    expect(got.mailArgs).toMatchObject({ SIZE: String(raw.length), BODY: '8BITMIME' });

    // on the wire: exactly the encoder output after DATA, and no bare CR/LF anywhere
    const wire = tap.bytes().toString('latin1');
    const start = wire.indexOf('DATA\r\n') + 'DATA\r\n'.length;
    const expectedWire = encodeData(PREFIX + body).toString('latin1');
    expect(wire.slice(start, start + expectedWire.length)).toBe(expectedWire);
    expect(/\r(?!\n)|(?<!\r)\n/.test(wire)).toBe(false);
    expect(tx.dataBytes).toBe(expectedWire.length);
    expect(relay.stats()).toMatchObject({ messages: 1, bytes: expectedWire.length, failures: 0, active: 0 });
  });

  it('returns a backend 550 on RCPT as a reply while other recipients succeed', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await tx.mailFrom('a@client.test')).code).toBe(250);
    const ok1 = await tx.rcptTo('one@backend.test');
    const bad = await tx.rcptTo(REJECTED);
    const ok2 = await tx.rcptTo('two@backend.test');
    expect(ok1.code).toBe(250);
    expect(bad.code).toBe(550);
    expect(bad.message).toContain('No such user');
    expect(ok2.code).toBe(250);
    expect((await tx.data(msg('Subject: x\r\n\r\nhi\r\n'), '')).code).toBe(250);
    await tx.release();
    expect(backend.received[0]?.to).toEqual(['one@backend.test', 'two@backend.test']);
    expect(backend.received[0]?.data.toString()).toBe('Subject: x\r\n\r\nhi\r\n');
  });

  it('parses multi-line replies and enhanced codes', async () => {
    const backend = await startBackend({ hideENHANCEDSTATUSCODES: false });
    const conn = await BackendConnection.connect({ host: HOST, port: backend.port, timeoutMs: 2000 });
    cleanups.push(() => conn.quit(1000));
    expect(conn.greeting?.code).toBe(220);
    const ehlo = await conn.hello('gw.test', 2000);
    expect(ehlo.code).toBe(250);
    expect(ehlo.lines.length).toBeGreaterThan(1);
    expect(conn.extensions.has('8BITMIME')).toBe(true);
    expect(conn.extensions.get('SIZE')).toBe(String(10 * 1024 * 1024));
    const noop = await conn.command('NOOP', 2000);
    expect(noop.code).toBe(250);
    const mail = await conn.command('MAIL FROM:<a@b.test>', 2000);
    expect(mail.enhanced).toBe('2.1.0');
    expect(mail.message).not.toMatch(/^2\.1\.0/);
  });

  it('turns a refused connection into a 4xx RelayError', async () => {
    const relay = smtpRelay(await freePort()) // nothing listens there;
    await expectRelayError4xx(relay.begin({ clientAddress: '192.0.2.1' }));
    expect(relay.stats().failures).toBe(1);
  });

  it('turns a greeting other than 220 into a 4xx RelayError', async () => {
    const s = await startScripted('greeting-554');
    await expectRelayError4xx(smtpRelay(s.port).begin({ clientAddress: '192.0.2.1' }));
  });

  it('falls back to HELO when EHLO is refused: sends no ESMTP parameters, and refuses a MAIL that needs one', async () => {
    const s = await startScripted('ehlo-refused');
    const relay = smtpRelay(s.port);
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    // an 8-bit message cannot be relayed as sent to an RFC 821 server: refused, not downgraded
    expect(await tx.mailFrom('a@client.test', { size: 100, body: '8BITMIME' })).toMatchObject({ code: 554, enhanced: '5.6.3' });
    expect(await tx.mailFrom('a@client.test', { smtputf8: true })).toMatchObject({ code: 553, enhanced: '5.6.7' });
    // SIZE is advisory and BODY=7BIT the default: dropped for it
    expect((await tx.mailFrom('a@client.test', { size: 100, body: '7BIT' })).code).toBe(250);
    tx.abort();
    expect(s.commands).toEqual(['EHLO gw.test', 'HELO gw.test', 'MAIL FROM:<a@client.test>']);
  });

  it('a backend that never greets times out with a 4xx RelayError', async () => {
    const s = await startScripted('silent');
    const relay = smtpRelay(s.port, { timeoutMs: 300 });
    const t0 = Date.now();
    await expectRelayError4xx(relay.begin({ clientAddress: '192.0.2.1' }));
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a backend that never answers the final dot times out with a 4xx, never 250', async () => {
    const s = await startScripted('silent-after-dot');
    const relay = smtpRelay(s.port, { timeoutMs: 300 });
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx, 'a@client.test', ['b@backend.test']);
    await expectRelayError4xx(tx.data(msg('Subject: x\r\n\r\nhi\r\n'), PREFIX));
    await tx.release();
    expect(relay.stats()).toMatchObject({ idle: 0, messages: 0 });
  });

  it('a backend that closes mid-DATA gives a 4xx, never 250', async () => {
    const s = await startScripted('close-mid-data');
    const relay = smtpRelay(s.port, { timeoutMs: 2000 });
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx, 'a@client.test', ['b@backend.test']);
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const big = Readable.from(
      (function* () {
        for (let i = 0; i < 200; i++) yield chunk;
      })(),
    );
    await expectRelayError4xx(tx.data(big, PREFIX));
    await tx.release();
    expect(relay.stats().idle).toBe(0);
  });

  it('a backend that closes right after the final dot gives a 4xx, never 250', async () => {
    const s = await startScripted('close-after-dot');
    const relay = smtpRelay(s.port, { timeoutMs: 2000 });
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx, 'a@client.test', ['b@backend.test']);
    await expectRelayError4xx(tx.data(msg('Subject: x\r\n\r\nhi\r\n'), PREFIX));
    await tx.release();
  });

  it('never terminates a message whose stream ended prematurely (client vanished)', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx, 'a@client.test', ['b@backend.test']);
    const stream = new PassThrough();
    const result = tx.data(stream, PREFIX);
    stream.write('Subject: half\r\n\r\nfirst part\r\n');
    setTimeout(() => stream.destroy(), 50);
    await expectRelayError4xx(result);
    tx.abort();
    await waitFor(() => backend.closes >= 1);
    expect(backend.received).toHaveLength(0);
    expect(relay.stats().idle).toBe(0);
  });

  it('does not terminate a message smtp-server flagged as oversized', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx, 'a@client.test', ['b@backend.test']);
    const stream = Object.assign(new PassThrough(), { sizeExceeded: false });
    const result = tx.data(stream, '');
    stream.write('Subject: big\r\n\r\n');
    stream.sizeExceeded = true;
    stream.end('more\r\n');
    const reply = await result;
    expect(reply.code).toBe(552);
    await tx.release();
    await waitFor(() => backend.closes >= 1);
    expect(backend.received).toHaveLength(0);
  });

  it('rejects addresses with control characters locally', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await tx.mailFrom('a@x.test>\r\nRCPT TO:<b@y.test')).code).toBe(501);
    expect((await tx.mailFrom('a@client.test')).code).toBe(250);
    expect((await tx.rcptTo('b@y.test\r\nDATA')).code).toBe(501);
    await tx.release();
    expect(backend.mailFroms).toEqual(['a@client.test']);
  });
});

describe('smtp relay connection pool', () => {
  it('reuses one backend connection for sequential transactions', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port, { poolSize: 1 });
    for (let i = 0; i < 3; i++) {
      const tx = await relay.begin({ clientAddress: '192.0.2.1' });
      await envelope(tx, `a${i}@client.test`, ['b@backend.test']);
      expect((await tx.data(msg(`Subject: ${i}\r\n\r\nbody ${i}\r\n`), '')).code).toBe(250);
      await tx.release();
    }
    expect(backend.connections).toBe(1);
    expect(backend.received.map((r) => r.from)).toEqual(['a0@client.test', 'a1@client.test', 'a2@client.test']);
    expect(relay.stats()).toMatchObject({ opened: 1, reused: 2, idle: 1, active: 0, messages: 3 });
  });

  it('pool_size 0 opens a connection per transaction', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port, { poolSize: 0 });
    for (let i = 0; i < 2; i++) {
      const tx = await relay.begin({ clientAddress: '192.0.2.1' });
      await envelope(tx, 'a@client.test', ['b@backend.test']);
      await tx.release();
    }
    expect(backend.connections).toBe(2);
    expect(relay.stats().idle).toBe(0);
  });

  it('a connection whose transaction was aborted is not reused', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const tx1 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx1, 'a@client.test', ['b@backend.test']);
    tx1.abort();
    await tx1.release(); // no-op after abort
    const tx2 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx2, 'c@client.test', ['b@backend.test']);
    expect((await tx2.data(msg('x\r\n'), '')).code).toBe(250);
    await tx2.release();
    expect(backend.connections).toBe(2);
    expect(backend.received.map((r) => r.from)).toEqual(['c@client.test']);
  });

  it('drops idle connections the backend closes, silently, and reconnects', async () => {
    const backend = await startBackend({ socketTimeout: 200 });
    const relay = smtpRelay(backend.port);
    const tx1 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx1, 'a@client.test', ['b@backend.test']);
    await tx1.release();
    expect(relay.stats().idle).toBe(1);
    // the backend times the idle connection out (421 + close)
    await waitFor(() => relay.stats().idle === 0);
    const tx2 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx2, 'c@client.test', ['b@backend.test']);
    expect((await tx2.data(msg('x\r\n'), '')).code).toBe(250);
    await tx2.release();
    expect(backend.connections).toBe(2);
  });

  it('retries MAIL once on a fresh connection when a pooled one turns out dead', async () => {
    const s = await startScripted('drop-second-mail');
    const relay = smtpRelay(s.port);
    const tx1 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx1, 'a@client.test', ['b@backend.test']);
    await tx1.release();
    expect(relay.stats().idle).toBe(1);
    const tx2 = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await tx2.mailFrom('c@client.test')).code).toBe(250);
    expect((await tx2.rcptTo('b@backend.test')).code).toBe(250);
    await tx2.release();
    expect(relay.stats()).toMatchObject({ opened: 2, reused: 1, idle: 1 });
  });

  it('transaction steps cannot overlap and cannot run after release', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    const first = tx.mailFrom('a@client.test');
    await expect(tx.rcptTo('b@backend.test')).rejects.toBeInstanceOf(RelayError);
    expect((await first).code).toBe(250);
    await tx.release();
    await expect(tx.rcptTo('b@backend.test')).rejects.toBeInstanceOf(RelayError);
  });
});

describe('end to end through an smtp-server front end', () => {
  it('a bare-LF smuggling attempt from a client reaches the backend as content of one message', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const txs = new Map<string, RelayTransaction>();
    const fail = (code: number, text: string): Error => Object.assign(new Error(text), { responseCode: code });
    const front = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      closeTimeout: 100,
      onMailFrom(address, session, cb) {
        relay
          .begin({ clientAddress: session.remoteAddress })
          .then(async (tx) => {
            txs.set(session.id, tx);
            const r = await tx.mailFrom(address.address);
            cb(r.code >= 400 ? fail(r.code, r.message) : null);
          })
          .catch((e: RelayError) => cb(e));
      },
      onRcptTo(address, session, cb) {
        const tx = txs.get(session.id);
        if (!tx) return cb(fail(503, 'no transaction'));
        tx.rcptTo(address.address).then(
          (r) => cb(r.code >= 400 ? fail(r.code, r.message) : null),
          (e: RelayError) => cb(e),
        );
      },
      onData(stream, session, cb) {
        const tx = txs.get(session.id);
        if (!tx) return cb(fail(503, 'no transaction'));
        txs.delete(session.id);
        tx.data(stream, PREFIX)
          .then(
            (r) => cb(r.code >= 200 && r.code < 300 ? null : fail(r.code, r.message), r.message),
            (e: RelayError) => cb(e),
          )
          .finally(() => void tx.release());
      },
      onClose(session) {
        txs.get(session.id)?.abort();
        txs.delete(session.id);
      },
    });
    await new Promise<void>((resolve) => front.listen(0, HOST, resolve));
    cleanups.push(() => new Promise<void>((resolve) => front.close(() => resolve())));
    const frontPort = (front.server.address() as AddressInfo).port;

    // the client: our own small SMTP client, sending raw bytes for the message
    const client = await BackendConnection.connect({ host: HOST, port: frontPort, timeoutMs: 3000 });
    cleanups.push(() => client.quit(1000));
    expect((await client.hello('client.test', 3000)).code).toBe(250);
    expect((await client.command('MAIL FROM:<a@client.test>', 3000)).code).toBe(250);
    expect((await client.command('RCPT TO:<b@backend.test>', 3000)).code).toBe(250);
    expect((await client.command(`RCPT TO:<${REJECTED}>`, 3000)).code).toBe(550);
    expect((await client.command('DATA', 3000)).code).toBe(354);
    const content =
      'Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@evil.test>\nRCPT TO:<victim@backend.test>\nDATA\nsmuggled\n.\n' +
      '..stuffed by the client\r\nend\r\n';
    const pending = client.write(Buffer.from(`${content}.\r\n`, 'latin1'), 3000);
    if (pending) await pending;
    const final = await client.readReply(3000);
    expect(final.code).toBe(250);

    expect(backend.received).toHaveLength(1);
    expect(backend.mailFroms).toEqual(['a@client.test']);
    expect(backend.received[0]?.to).toEqual(['b@backend.test']);
    // the client's ".." was unstuffed by the front end and re-stuffed by us
    const expected = PREFIX + content.replace('..stuffed', '.stuffed').replace(/\r\n|\r|\n/g, '\r\n');
    expect(backend.received[0]?.data.toString('utf8')).toBe(expected);
  });
});

describe('dir relay', () => {
  it('writes a complete .eml atomically and leaves no temp files', async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'auditgate-relay-'));
    cleanups.push(() => rm(base, { recursive: true, force: true }));
    const dir = path.join(base, 'var', 'mail'); // does not exist yet
    const relay = createRelay({ kind: 'dir', dir, hostname: 'gw.test' });
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await tx.mailFrom('a@client.test')).code).toBe(250);
    expect((await tx.rcptTo('b@backend.test')).code).toBe(250);
    expect((await tx.rcptTo('c@backend.test')).code).toBe(250);
    const reply = await tx.data(msg('Subject: hi\n\n.dot line\r', '\nbare\rend\r\n'), PREFIX);
    expect(reply.code).toBe(250);
    await tx.release();

    const files = await readdir(dir);
    expect(files).toHaveLength(1);
    const name = files[0] as string;
    expect(name).toMatch(/^\d+-[0-9a-f]{16}\.eml$/);
    expect(reply.message).toContain(name);
    const text = await readFile(path.join(dir, name), 'utf8');
    expect(text).toBe(
      'X-Envelope-From: <a@client.test>\r\nX-Envelope-To: <b@backend.test>\r\nX-Envelope-To: <c@backend.test>\r\n' +
        PREFIX +
        'Subject: hi\r\n\r\n.dot line\r\nbare\r\nend\r\n',
    );
    expect(relay.stats()).toMatchObject({ kind: 'dir', messages: 1, active: 0 });
  });

  it('a message whose stream fails leaves no file behind and gives a 4xx', async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'auditgate-relay-'));
    cleanups.push(() => rm(base, { recursive: true, force: true }));
    const relay = createRelay({ kind: 'dir', dir: base, hostname: 'gw.test' });
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    await tx.mailFrom('a@client.test');
    await tx.rcptTo('b@backend.test');
    const stream = new PassThrough();
    const result = tx.data(stream, PREFIX);
    stream.write('Subject: half\r\n\r\n');
    setTimeout(() => stream.destroy(), 30);
    await expectRelayError4xx(result);
    tx.abort();
    expect(await readdir(base)).toEqual([]);
  });
});
