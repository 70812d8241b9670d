/**
 * A PROXY header from a peer that is not trusted, on a gateway that has trusted PROXY peers:
 * the greeting waits server.proxy_header_wait, so a header sent on connect (as a proxy that is
 * missing from proxy_protocol sends it) is refused with 554 before any 220. A client that waits
 * for the greeting, as SMTP clients do, gets it after the wait and is served as usual.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyV1, sendMail, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

describe('a PROXY header from an untrusted peer, with trusted PROXY peers configured', () => {
  let backend: Backend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      // loopback is not trusted; the wait is long so that a loaded machine still reads the header first
      proxy: '[192.0.2.1/32]',
      server: '  proxy_header_wait: 2s\n',
      body: 'series:\n  conn: { type: cidr, interval: 60, windows: 4 }\nrecord:\n  - { on: connect, series: conn }\n',
    });
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
  });

  it('is refused with 554 before any greeting', async () => {
    const socket = net.connect(gw.port, '127.0.0.1');
    let got = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (got += d));
    socket.on('error', () => undefined);
    socket.once('connect', () => socket.write(proxyV1('203.0.113.66')));
    await new Promise<void>((r) => socket.once('close', () => r()));
    expect(got).toMatch(/^554 5\.7\.1 PROXY header not accepted from 127\.0\.0\.1 \[\w+@gw\.test\]\r\n$/);
    expect(await gw.gateway.store.count('conn', '203.0.113.66')).toBe(0);
    expect(gw.logs.some((l) => l.msg === 'PROXY header from an untrusted peer refused')).toBe(true);
  });

  it('a client that waits for the greeting is greeted and served', async () => {
    const replies = await sendMail(gw.port, { to: ['patient@example.net'] });
    expect(replies.map((r) => r.code)).toEqual([220, 250, 250, 250, 250, 221]);
    expect(backend.messages.at(-1)?.to).toEqual(['patient@example.net']);
  });
});
