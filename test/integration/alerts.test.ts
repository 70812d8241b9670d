/**
 * Alerts through a running gateway, to HTTP receivers started here on 127.0.0.1: the fields of
 * the POST and the deduplication per key, retries of a failing receiver, and a receiver that
 * hangs while 20 SMTP sessions run at once (they all complete while it still holds every request).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { waitUntil } from '../helpers/redis.js';
import { receiver, type Receiver } from '../helpers/alert-receiver.js';
import { proxyV1, sendMail, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

const T0 = 1_800_000_000_000;


const SERIES = `series:
  conn: { type: cidr, interval: 60, windows: 4 }
  conn6: { type: cidr_ipv6, interval: 60, windows: 4 }
record:
  - { on: connect, series: [conn, conn6] }
`;

describe('alerts', () => {
  let backend: Backend | undefined;
  let gw: TestGateway | undefined;
  const receivers: Receiver[] = [];
  afterEach(async () => {
    await gw?.close();
    await backend?.close();
    for (const r of receivers.splice(0)) await r.close();
    gw = undefined;
    backend = undefined;
  });
  const start = async (body: string, clock?: ManualClock, delivery?: { maxQueue?: number; concurrency?: number; backoffMs?: number }): Promise<TestGateway> => {
    backend = await startBackend();
    const opts: Parameters<typeof startTestGateway>[0] = { relay: `smtp://127.0.0.1:${backend.port}`, body, admin: '{ listen: "127.0.0.1:0" }' };
    if (clock) opts.clock = clock;
    if (delivery) opts.alertDelivery = delivery;
    gw = await startTestGateway(opts);
    return gw;
  };
  const connect = async (ip: string): Promise<number> => {
    const c = await SmtpTestClient.connect(gw!.port, { preface: proxyV1(ip) });
    c.close();
    return c.greeting.code;
  };
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${gw!.gateway.adminAddress()!.port}/metrics`)).text();

  it('POSTs the firing once per key and min_interval, with the policy, counts per window, client, cid, time and node', async () => {
    const ops = await receiver('ok');
    receivers.push(ops);
    const clock = new ManualClock(T0);
    await start(
      `${SERIES}policies:
  - { name: flood, on: connect, series: conn, mask: 24, windows: [0, 3], above: 2, action: tempfail }
  - { name: watch, on: connect, client: [203.0.113.0/24], action: reject, mode: shadow }
alerts:
  - { name: ops, url: "${ops.url}", policies: [flood], min_interval: 5m, headers: { Authorization: "Bearer t0k3n" } }
`,
      clock,
    );
    for (const n of [1, 2, 3, 4, 5]) await connect(`192.0.2.${n}`); // flood fires at 3, 4, 5: one alert
    await connect('203.0.113.9'); // watch fires (shadow), but ops only wants flood
    expect(await waitUntil(() => ops.requests.length === 1, 5000, 10)).toBe(true);
    const { headers, body } = ops.requests[0]!;
    expect(headers.authorization).toBe('Bearer t0k3n');
    expect(headers['content-type']).toBe('application/json');
    expect(body).toEqual({
      alert: 'ops',
      policy: 'flood',
      action: 'tempfail',
      mode: 'enforce',
      stage: 'connect',
      series: 'conn',
      key: '192.0.2.0/24',
      count: 3,
      above: 2,
      windows: [0, 3],
      counts: [expect.any(Number), 0, 0, 0],
      client: '192.0.2.3',
      cid: expect.stringMatching(/^\w+$/),
      time: new Date(T0).toISOString(),
      node: 'gw.test',
    });
    expect((body.counts as number[])[0]).toBeGreaterThanOrEqual(3); // read after the firing: later connects may be in
    expect(gw!.logs.some((l) => l.cid === body.cid && l.policy === 'flood' && l.msg === 'policy fired')).toBe(true);

    await connect('198.51.100.1');
    await connect('198.51.100.2');
    await connect('198.51.100.3'); // another /24: its own alert
    expect(await waitUntil(() => ops.requests.length === 2, 5000, 10)).toBe(true);
    expect(ops.requests[1]!.body.key).toBe('198.51.100.0/24');

    clock.advance(4 * 60_000); // counts aged out, but within min_interval of the first alert
    for (const n of [1, 2, 3]) await connect(`192.0.2.${n}`);
    clock.advance(60_000); // now 5 minutes after it: the next firing alerts again
    for (const n of [4, 5, 6]) await connect(`192.0.2.${n}`);
    expect(await waitUntil(() => ops.requests.length === 3, 5000, 10)).toBe(true);
    expect(ops.requests[2]!.body).toMatchObject({ key: '192.0.2.0/24', client: '192.0.2.4', time: new Date(T0 + 5 * 60_000).toISOString() });
    expect(await metrics()).toMatch(/^auditgate_alerts_total\{alert="ops",result="sent"\} 3$/m);
  });

  it('retries a failing receiver with backoff, then counts the alert failed', async () => {
    const bad = await receiver('fail');
    receivers.push(bad);
    await start(
      `${SERIES}policies:
  - { name: watch, on: connect, series: conn, mask: 32, above: 0, action: tarpit, delay: 1s, mode: shadow }
alerts:
  - { name: flaky, url: "${bad.url}", retries: 2 }
`,
      undefined,
      { backoffMs: 5 },
    );
    await connect('192.0.2.1');
    expect(await waitUntil(async () => /auditgate_alerts_total\{alert="flaky",result="failed"\} 1$/m.test(await metrics()), 5000, 20)).toBe(true);
    expect(bad.requests.length).toBe(3); // the first attempt and two retries
    expect(bad.requests.every((r) => r.body.mode === 'shadow' && r.body.key === '192.0.2.1/32')).toBe(true);
  });

  it('a receiver that hangs never delays an SMTP reply: 20 concurrent sessions complete while it holds every request', async () => {
    const hung = await receiver('hang');
    receivers.push(hung);
    await start(
      `${SERIES}policies:
  - { name: watch, on: connect, series: conn, mask: 32, above: 0, action: reject, mode: shadow }
  - { name: watch6, on: connect, series: conn6, mask: 128, above: 0, action: reject, mode: shadow }
alerts:
  - { name: stuck, url: "${hung.url}", min_interval: 0, timeout: 1h, retries: 0 }
`,
      undefined,
      { concurrency: 2, maxQueue: 5 },
    );
    const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => sendMail(gw!.port, { preface: proxyV1(i % 2 ? `2001:db8::${i}` : `192.0.2.${i}`) })));
    expect(sessions.map((r) => r[4]!.code)).toEqual(new Array(20).fill(250));
    expect(hung.answered).toBe(0);
    expect(await waitUntil(() => hung.held.length === 2, 5000, 10)).toBe(true); // two in flight, five queued, the rest dropped
    const text = await metrics();
    expect(text).toMatch(/^auditgate_alerts_total\{alert="stuck",result="dropped"\} 13$/m);
    expect(text).toMatch(/^auditgate_alerts_total\{alert="stuck",result="sent"\} 0$/m);
    hung.release();
    expect(await waitUntil(async () => /auditgate_alerts_total\{alert="stuck",result="sent"\} 7$/m.test(await metrics()), 5000, 20)).toBe(true);
  });
});
