/**
 * BDAT (RFC 3030) towards a backend that offers CHUNKING: one round trip per small message,
 * chunks for big ones, refusals passed on, failures a 4xx — never a 250 for mail the backend
 * did not take.
 */
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayError } from '../../src/errors.js';
import { encodeData } from '../../src/smtp/relay/data-normalize.js';
import { createRelay } from '../../src/smtp/relay/create.js';
import type { Relay, RelayTransaction } from '../../src/smtp/relay/types.js';
import { startBdatBackend, type BdatBackend, type BdatBackendOptions } from '../helpers/bdat-backend.js';
import { smtpRelayOptions } from '../helpers/relay.js';
import { sendMail, startTestGateway } from '../helpers/smtp.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function backend(opts: BdatBackendOptions = {}): Promise<BdatBackend> {
  const b = await startBdatBackend(opts);
  cleanups.push(() => b.close());
  return b;
}

function relayTo(b: BdatBackend, extra: { chunking?: boolean; timeoutMs?: number } = {}): Relay {
  const relay = createRelay(smtpRelayOptions(b.port, { timeoutMs: extra.timeoutMs ?? 5000, ...(extra.chunking === undefined ? {} : { chunking: extra.chunking }) }));
  cleanups.push(() => relay.close());
  return relay;
}

/** A transaction with its envelope (a@client.test → b@backend.test) sent. */
async function transaction(relay: Relay): Promise<RelayTransaction> {
  const tx = await relay.begin({ clientAddress: '192.0.2.1' });
  await tx.mailFrom('a@client.test');
  await tx.rcptTo('b@backend.test');
  return tx;
}

const PREFIX = 'Received: from client.test ([192.0.2.1]) by gw.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n';

async function expect4xx(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    (v) => new Error(`expected a RelayError, got ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RelayError);
  expect((err as RelayError).responseCode).toBe(451);
}

describe('BDAT to a backend that offers CHUNKING', () => {
  it('sends a small message as one BDAT LAST: normalized line endings, no dot-stuffing, no terminator', async () => {
    const b = await backend();
    const relay = relayTo(b);
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await tx.mailFrom('a@client.test')).code).toBe(250);
    expect((await tx.rcptTo('b@backend.test')).code).toBe(250);
    const body = 'Subject: x\r\n\r\nbare LF\nthen a dot line\r\n.\r\n..two\r\nend\r\n';
    const reply = await tx.data(Readable.from([Buffer.from(body)]), PREFIX);
    expect(reply).toMatchObject({ code: 250, enhanced: '2.0.0', message: 'Ok: queued as BDAT1' });
    await tx.release();

    const expected = encodeData(PREFIX + body, { dotStuff: false, terminate: false });
    expect(b.messages).toHaveLength(1);
    expect(b.messages[0]).toMatchObject({ from: 'a@client.test', to: ['b@backend.test'], via: 'bdat', chunks: [expected.length] });
    expect(b.messages[0]!.data.toString('latin1')).toBe(expected.toString('latin1'));
    expect(b.messages[0]!.data.toString('latin1')).toContain('bare LF\r\nthen a dot line\r\n.\r\n..two\r\n');
    expect(b.commands.filter((c) => c.startsWith('BDAT'))).toEqual([`BDAT ${expected.length} LAST`]);
    expect(b.commands).not.toContain('DATA');
    expect(tx.dataBytes).toBe(expected.length);
    expect(relay.stats()).toMatchObject({ messages: 1, bytes: expected.length, idle: 1 });

    // the accepted message left the connection clean: the next transaction reuses it without RSET
    const tx2 = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await tx2.mailFrom('c@client.test')).code).toBe(250);
    await tx2.release();
    expect(b.connections).toBe(1);
    expect(b.commands.slice(-3)).toEqual([`BDAT ${expected.length} LAST`, 'MAIL FROM:<c@client.test>', 'RSET']);
  });

  it('sends a big message in chunks of at most 64 KiB, the last one marked LAST', async () => {
    const b = await backend();
    const relay = relayTo(b);
    const tx = await transaction(relay);
    const line = `${'y'.repeat(98)}\r\n`;
    const body = line.repeat(3000); // 300,000 bytes
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < body.length; i += 7000) yield Buffer.from(body.slice(i, i + 7000));
      })(),
    );
    const reply = await tx.data(source, PREFIX);
    expect(reply.code).toBe(250);
    const m = b.messages[0]!;
    expect(m.data.toString('latin1')).toBe(PREFIX + body);
    expect(m.chunks.length).toBeGreaterThan(4);
    expect(m.chunks.every((n) => n <= 64 * 1024 + 7000)).toBe(true);
    expect(m.chunks.reduce((x, y) => x + y, 0)).toBe(PREFIX.length + body.length);
    const bdats = b.commands.filter((c) => c.startsWith('BDAT'));
    expect(bdats.slice(0, -1).every((c) => !c.endsWith('LAST'))).toBe(true);
    expect(bdats.at(-1)).toMatch(/ LAST$/);
  });

  it('an empty message without a prefix is BDAT 0 LAST', async () => {
    const b = await backend();
    const relay = relayTo(b);
    const tx = await transaction(relay);
    expect((await tx.data(Readable.from([]), '')).code).toBe(250);
    expect(b.commands.filter((c) => c.startsWith('BDAT'))).toEqual(['BDAT 0 LAST']);
    expect(b.messages[0]!.data.length).toBe(0);
  });

  it('a refused chunk in the middle ends the message with that reply; the connection is RSET and reused', async () => {
    const b = await backend({ bdatReply: (i, last) => (i === 1 && !last ? '552 5.3.4 Message too big for this mailbox' : undefined) });
    const relay = relayTo(b);
    const tx = await transaction(relay);
    const big = Buffer.alloc(200 * 1024, 'z');
    const reply = await tx.data(Readable.from([big.subarray(0, 100 * 1024), big.subarray(100 * 1024)]), PREFIX);
    expect(reply).toMatchObject({ code: 552, enhanced: '5.3.4' });
    await tx.release();
    expect(b.messages).toHaveLength(0);
    // no more chunks after the refusal
    expect(b.commands.filter((c) => c.startsWith('BDAT'))).toHaveLength(2);
    expect(b.commands.at(-1)).toBe('RSET');
    expect(relay.stats()).toMatchObject({ messages: 0, idle: 1, failures: 0 });
  });

  it('a 4xx to BDAT LAST is the final reply and no message is counted', async () => {
    const b = await backend({ bdatReply: (_i, last) => (last ? '451 4.3.0 Queue file write error' : undefined) });
    const relay = relayTo(b);
    const tx = await transaction(relay);
    const reply = await tx.data(Readable.from([Buffer.from('Subject: x\r\n\r\nhi\r\n')]), PREFIX);
    expect(reply).toMatchObject({ code: 451, enhanced: '4.3.0', message: 'Queue file write error' });
    expect(relay.stats().messages).toBe(0);
  });

  it('a backend that drops the connection in the middle of a chunk gives a 4xx RelayError', async () => {
    const b = await backend({ closeAfterBytes: 10_000 });
    const relay = relayTo(b);
    const tx = await transaction(relay);
    await expect4xx(tx.data(Readable.from([Buffer.alloc(50_000, 'q')]), PREFIX));
    await tx.release();
    expect(b.messages).toHaveLength(0);
    expect(relay.stats()).toMatchObject({ idle: 0, messages: 0 });
  });

  it('a client that vanishes mid-message never gets a LAST sent for it', async () => {
    const b = await backend();
    const relay = relayTo(b);
    const tx = await transaction(relay);
    const stream = new PassThrough();
    const result = tx.data(stream, PREFIX);
    stream.write(Buffer.alloc(100 * 1024, 'p')); // more than one chunk's worth: a first BDAT goes out
    setTimeout(() => stream.destroy(), 50);
    await expect4xx(result);
    tx.abort();
    expect(b.commands.filter((c) => c.startsWith('BDAT')).length).toBeGreaterThanOrEqual(1);
    expect(b.commands.some((c) => c.endsWith('LAST'))).toBe(false);
    expect(b.messages).toHaveLength(0);
  });

  it('chunking: false uses DATA even when the backend offers CHUNKING', async () => {
    const b = await backend();
    const relay = relayTo(b, { chunking: false });
    const tx = await transaction(relay);
    const body = 'Subject: x\r\n\r\n.dot\r\n';
    expect((await tx.data(Readable.from([Buffer.from(body)]), PREFIX)).code).toBe(250);
    expect(b.commands).toContain('DATA');
    expect(b.commands.some((c) => c.startsWith('BDAT'))).toBe(false);
    expect(b.messages[0]).toMatchObject({ via: 'data' });
    expect(b.messages[0]!.data.toString('latin1')).toBe(PREFIX + body);
  });

  it('a backend without CHUNKING gets DATA', async () => {
    const b = await backend({ chunking: false });
    const relay = relayTo(b);
    const tx = await transaction(relay);
    expect((await tx.data(Readable.from([Buffer.from('Subject: x\r\n\r\nhi\r\n')]), PREFIX)).code).toBe(250);
    expect(b.messages[0]).toMatchObject({ via: 'data' });
  });
});

describe('through the gateway', () => {
  it('a client DATA reaches a CHUNKING backend as one BDAT with the Received header; the client gets the backend 250', async () => {
    const b = await backend();
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${b.port}`, body: 'series: {}\n' });
    cleanups.push(() => gw.close());
    const replies = await sendMail(gw.port, { preface: 'PROXY TCP4 198.51.100.7 127.0.0.1 40000 2525\r\n', to: ['one@example.net', 'unknown@example.net'], body: 'Subject: via bdat\r\n\r\nsmuggle\n.\nMAIL FROM:<x@y>\r\nend\r\n' });
    expect(replies.map((r) => r.code)).toEqual([220, 250, 250, 250, 550, 250, 221]);
    expect(replies[5]!.text).toMatch(/Ok: queued as BDAT1/);
    expect(b.messages).toHaveLength(1);
    const m = b.messages[0]!;
    expect(m).toMatchObject({ from: 'sender@example.org', to: ['one@example.net'], via: 'bdat' });
    expect(m.chunks).toHaveLength(1);
    const text = m.data.toString('latin1');
    expect(text).toMatch(/^Received: from client\.test \(\[198\.51\.100\.7\]\)/);
    // the smuggling attempt is content with normalized line endings, inside the one message
    expect(text).toContain('\r\nsmuggle\r\n.\r\nMAIL FROM:<x@y>\r\nend\r\n');
    expect(/\r(?!\n)|(?<!\r)\n/.test(text)).toBe(false);
  });
});
