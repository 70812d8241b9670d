/** Pool hygiene: RSET only when a transaction ended without an accepted message. */
import net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRelay } from '../../src/smtp/relay/create.js';
import { smtpRelayOptions } from '../helpers/relay.js';

const commands: string[] = [];
let server: net.Server;
let port = 0;

beforeAll(async () => {
  server = net.createServer((s) => {
    s.on('error', () => {});
    s.write('220 rec ESMTP\r\n');
    let buf = '';
    let inData = false;
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            s.write('250 queued\r\n');
          }
          continue;
        }
        commands.push(line.split(/[ :]/)[0]!.toUpperCase());
        if (/^EHLO/i.test(line)) s.write('250-rec\r\n250 PIPELINING\r\n');
        else if (/^DATA/i.test(line)) {
          inData = true;
          s.write('354 go\r\n');
        } else if (/^QUIT/i.test(line)) s.end('221 bye\r\n');
        else s.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

it('skips RSET after an accepted message and sends it after an abandoned transaction', async () => {
  const relay = createRelay(smtpRelayOptions(port, { timeoutMs: 2000 }));
  try {
    for (let i = 0; i < 2; i++) {
      const tx = await relay.begin({ clientAddress: '192.0.2.1' });
      expect((await tx.mailFrom('a@b.example')).code).toBe(250);
      expect((await tx.rcptTo('c@d.example')).code).toBe(250);
      expect((await tx.data(Readable.from([Buffer.from('Subject: x\r\n\r\nhi\r\n')]), '')).code).toBe(250);
      await tx.release();
    }
    const abandoned = await relay.begin({ clientAddress: '192.0.2.1' });
    await abandoned.mailFrom('a@b.example');
    await abandoned.release();
    const next = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await next.mailFrom('e@f.example')).code).toBe(250);
    await next.release();
    expect(commands).toEqual(['EHLO', 'MAIL', 'RCPT', 'DATA', 'MAIL', 'RCPT', 'DATA', 'MAIL', 'RSET', 'MAIL', 'RSET']);
    expect(relay.stats().opened).toBe(1);
  } finally {
    await relay.close();
  }
});
