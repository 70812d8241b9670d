import { type AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { RelayError } from '../../src/errors.js';
import { BackendConnection } from '../../src/smtp/relay/backend-client.js';
import type { RelayTransaction } from '../../src/smtp/relay/types.js';
import { HOST, REJECTED, cleanups, startBackend, smtpRelay, PREFIX } from './relay-helpers.js';

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
