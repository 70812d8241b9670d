import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BackendConnection } from '../../src/smtp/relay/backend-client.js';
import { encodeData } from '../../src/smtp/relay/data-normalize.js';
import { waitFor } from '../helpers/wait.js';
import { freePort } from '../helpers/redis.js';
import { HOST, REJECTED, cleanups, startBackend, startTap, startScripted, smtpRelay, msg, expectRelayError4xx, envelope, PREFIX, type Received } from './relay-helpers.js';

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
