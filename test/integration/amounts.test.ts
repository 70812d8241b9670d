/**
 * Record rules that add more than 1, through the real gateway (real backend, PROXY headers for
 * IPv4 and IPv6 clients): count: rcpts adds the message's accepted recipients at DATA, count:
 * bytes the size of each message the backend accepted (after the data stage's policies, which
 * therefore see the bytes of earlier messages), count: N a fixed number.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { waitUntil } from '../helpers/redis.js';
import { proxyV1, sendMail, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

const BODY = `
series:
  rcpts: { type: cidr, interval: 60, windows: 4 }
  rcpts6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64 }
  bytes: { type: cidr, interval: 60, windows: 4 }
  bytes6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64 }
  weighted: { type: string, interval: 60, windows: 4 }
record:
  - { on: data, series: [rcpts, rcpts6], count: rcpts }
  - { on: data, series: [bytes, bytes6], count: bytes }
  - { on: mail, series: weighted, key: "{mail_from_domain}", count: 5 }
policies:
  - { name: rcpt-volume, on: data, series: rcpts, mask: 32, windows: [0, 3], above: 15, action: tempfail, reply: "452 4.5.3 too many recipients this hour" }
  - { name: byte-volume, on: data, series: bytes, mask: 24, windows: [0, 3], above: 1000, action: tempfail, reply: "452 4.3.1 too many bytes from your network" }
  - { name: byte-volume6, on: data, series: bytes6, mask: 64, windows: [0, 3], above: 1000, action: tempfail }
`;

/** A message of exactly `n` bytes as the client sends it (CRLF lines, no dot at a line start). */
function messageOf(n: number): string {
  const head = 'Subject: size\r\n\r\n';
  const line = `${'x'.repeat(78)}\r\n`;
  let body = head;
  while (body.length + line.length <= n) body += line;
  body += `${'y'.repeat(Math.max(0, n - body.length - 2))}\r\n`;
  if (Buffer.byteLength(body) !== n) throw new Error(`built ${Buffer.byteLength(body)} bytes, wanted ${n}`);
  return body;
}

describe('record amounts through the gateway', () => {
  let backend: Backend;
  let gw: TestGateway;
  const clock = new ManualClock(1_800_000_000_000);
  const count = (series: string, key: string) => gw.gateway.store.count(series, key, 0, 3);

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: BODY, clock });
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
  });

  it('a message to 10 recipients adds 10, a refused recipient adds nothing, and bytes add its size', async () => {
    const to = [...Array.from({ length: 10 }, (_, i) => `user${i}@rcpt.example`), 'unknown@rcpt.example'];
    const body = messageOf(700);
    const r = await sendMail(gw.port, { preface: proxyV1('192.0.2.10'), from: 'a@sender.example', to, body });
    expect(r.map((x) => x.code)).toEqual([220, 250, 250, ...Array(10).fill(250), 550, 250, 221]);
    expect(await count('rcpts', '192.0.2.10')).toBe(10);
    expect(await waitUntil(async () => (await count('bytes', '192.0.2.10')) === 700, 5000)).toBe(true);
    expect(await count('bytes', '192.0.2.0/24')).toBe(700);
    expect(await count('weighted', 'sender.example')).toBe(5);
    expect(backend.messages.at(-1)!.to).toHaveLength(10);
  });

  it('the same for an IPv6 client, counted by its /64', async () => {
    const body = messageOf(333);
    const r = await sendMail(gw.port, { preface: proxyV1('2001:db8:7:1::25'), to: ['a@x.example', 'b@x.example', 'c@x.example'], body });
    expect(r.at(-2)!.code).toBe(250);
    expect(await count('rcpts6', '2001:db8:7:1::/64')).toBe(3);
    expect(await waitUntil(async () => (await count('bytes6', '2001:db8:7:1::99')) === 333, 5000)).toBe(true);
    expect(await count('rcpts', '0.0.0.0/0')).toBe(10); // the IPv4 series ignored the IPv6 client
  });

  it('DATA policies see the bytes of the messages before this one', async () => {
    const body = messageOf(600);
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await sendMail(gw.port, { preface: proxyV1(`198.51.100.${i + 1}`), to: ['x@rcpt.example'], body });
      codes.push(r.at(-2)!.code);
      await waitUntil(async () => (await count('bytes', '198.51.100.0/24')) >= 600 * Math.min(i + 1, 2), 5000);
    }
    // 0 bytes before the first, 600 before the second (≤ 1000), 1200 before the third: refused at DATA
    expect(codes).toEqual([250, 250, 452]);
    expect(await count('bytes', '198.51.100.0/24')).toBe(1200);
  });

  it('rcpts are counted at DATA, before its policies: the message that crosses the limit is refused', async () => {
    const to = Array.from({ length: 10 }, (_, i) => `r${i}@rcpt.example`);
    const first = await sendMail(gw.port, { preface: proxyV1('203.0.113.5'), to });
    const second = await sendMail(gw.port, { preface: proxyV1('203.0.113.5'), to });
    expect(first.at(-2)!.code).toBe(250);
    expect(second.at(-2)).toMatchObject({ code: 452, text: expect.stringMatching(/^4\.5\.3 too many recipients this hour/) });
    expect(await count('rcpts', '203.0.113.5')).toBe(20);
  });
});
