/**
 * The milter front over real sockets, driven by a simulated MTA built on the codec's encoders
 * (bench/mta-client.ts): negotiation, every stage, verdicts as replies with [cid@host], tarpit
 * with SMFIR_PROGRESS, sessions per prefix, ABORT, QUIT_NC reuse, and misbehaving MTAs (bad
 * packets, commands out of order, silence, too many connections) closing only their own
 * connection. Postfix itself: postfix-milter.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MilterClient, milterSession } from '../../bench/mta-client.js';
import { SMFIP, SMFIR } from '../../src/milter/protocol.js';
import { optnegOf, replyCodeOf } from '../../src/milter/reply-decoder.js';
import { startFronts, type FrontsGateway } from '../helpers/fronts.js';
import { waitFor } from '../helpers/wait.js';

const BODY = `series:
  conn: { type: cidr, interval: 1h, windows: 2 }
  conn6: { type: cidr_ipv6, interval: 1h, windows: 2, store_prefix: 64 }
  users: { type: string, interval: 1h, windows: 2 }
  bad_rcpt: { type: cidr, interval: 1h, windows: 2 }
  rcpts: { type: cidr, interval: 1h, windows: 2 }
  rcpt_n: { type: cidr, interval: 1h, windows: 2 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: mail, series: users, key: "{auth_user}" }
  - { on: rcpt_rejected, series: bad_rcpt }
  - { on: rcpt, series: rcpts }
  - { on: data, series: rcpt_n, count: rcpts }
policies:
  - { name: trusted, on: connect, client: [198.51.100.0/24], action: accept }
  - { name: conn32, on: connect, series: conn, mask: 32, above: 2, action: tempfail, client: [192.0.2.0/24] }
  - { name: conn64, on: connect, series: conn6, mask: 64, above: 2, action: tempfail }
  - { name: slower-mail, on: mail, client: [203.0.113.6/32], action: tarpit, delay: 60s }
  - { name: slow-mail, on: mail, client: [203.0.113.0/24], action: tarpit, delay: 2500ms }
  - { name: no-rcpt, on: rcpt, series: rcpts, mask: 32, above: 1, action: reject }
  - { name: watch-helo, on: helo, client: [192.0.2.77/32], action: reject, mode: shadow }
`;

describe('milter front (simulated MTA)', () => {
  let gw: FrontsGateway;
  const clients: MilterClient[] = [];
  const connect = async (): Promise<MilterClient> => {
    const c = await MilterClient.connect({ port: gw.milterPort });
    clients.push(c);
    return c;
  };
  const negotiated = async (): Promise<MilterClient> => {
    const c = await connect();
    await c.negotiate();
    return c;
  };
  const stats = () => gw.gateway.milter!.stats;

  beforeAll(async () => {
    gw = await startFronts({ milter: '{ listen: ["127.0.0.1:0"], max_connections: 100, idle_timeout: 30s }', body: BODY });
  });

  afterAll(async () => {
    if (process.env.DEBUG_FRONTS) console.log(gw.logs.filter((l) => (l.level as number) >= 40));
    for (const c of clients) c.close();
    await gw?.close();
  });

  it("negotiates against Postfix's offer: no body, headers, EOH or unknown; a reply for every stage; rejected recipients too", async () => {
    const c = await connect();
    const r = await c.negotiate();
    expect(r.command).toBe(SMFIR.OPTNEG);
    expect(optnegOf(r)).toEqual({ version: 6, actions: 0, protocol: SMFIP.NOBODY | SMFIP.NOHDRS | SMFIP.NOEOH | SMFIP.NOUNKNOWN | SMFIP.RCPT_REJ });
  });

  it('runs every stage of a session, counts it, and answers continue', async () => {
    const c = await negotiated();
    const replies = await milterSession(c, { client: '192.0.2.10', mailMacros: { '{auth_authen}': 'Alice', i: 'Q1' } });
    expect(replies.map((r) => r.command)).toEqual(['c', 'c', 'c', 'c', 'c', 'c']);
    expect(await gw.gateway.store.count('conn', '192.0.2.10')).toBe(1);
    expect(await gw.gateway.store.count('users', 'Alice')).toBe(1); // {auth_authen} is {auth_user}
    expect(gw.gateway.sessions.count('192.0.2.10')).toBe(1); // open until QUIT
    c.tell({ type: 'quit' });
    await c.closed;
    await waitFor(() => gw.gateway.sessions.count('192.0.2.10') === 0);
  });

  it('refuses with SMFIR_REPLYCODE from the reply table, naming the session; a refused RCPT leaves the session going', async () => {
    const c = await negotiated();
    const replies = await milterSession(c, { client: '192.0.2.11', to: ['a@example.net', 'b@example.net'] });
    expect(replies.map((r) => r.command)).toEqual(['c', 'c', 'c', 'c', 'y']);
    const refusal = replyCodeOf(replies[4]!)!;
    expect(refusal.code).toBe(550);
    expect(refusal.text).toMatch(/^5\.7\.1 Recipient refused by policy \[[0-9a-f]{12}@gw\.test\]$/);
    // the MTA goes on with the recipients it has
    expect((await c.ask({ type: 'data' })).command).toBe(SMFIR.CONTINUE);
    expect((await c.ask({ type: 'eom' })).command).toBe(SMFIR.CONTINUE);
    expect(await gw.gateway.store.count('rcpt_n', '192.0.2.11')).toBe(1); // count: rcpts: the one let through
    expect(gw.logs.some((l) => l.policy === 'no-rcpt' && l.mode === 'enforce' && typeof l.cid === 'string' && refusal.text.includes(l.cid))).toBe(true);
  });

  it('throttles at /32 (IPv4) and /64 (IPv6) with 421 at connect', async () => {
    for (const [client, other] of [
      ['192.0.2.12', '192.0.2.13'],
      ['2001:db8:7:7::1', '2001:db8:7:8::1'],
    ] as const) {
      const seen: number[] = [];
      for (let i = 0; i < 3; i++) {
        const c = await negotiated();
        const ip = client.includes(':') ? client.replace(/1$/, String(i + 1)) : client; // IPv6: three addresses of one /64
        const [r] = await milterSession(c, { client: ip });
        seen.push(replyCodeOf(r!)?.code ?? 0);
        if (i === 2) expect(replyCodeOf(r!)!.text).toMatch(/^4\.7\.0 Too many connections from your network, try again later \(try again in \d+[sm]\) \[[0-9a-f]{12}@gw\.test\]$/);
        c.close();
      }
      expect(seen).toEqual([0, 0, 421]);
      const [ok] = await milterSession(await negotiated(), { client: other });
      expect(ok!.command).toBe(SMFIR.CONTINUE);
    }
  });

  it('holds a tarpitted answer back with SMFIR_PROGRESS, without delaying other MTA connections', async () => {
    const slow = await negotiated();
    const started = Date.now();
    const pending = milterSession(slow, { client: '203.0.113.5' });
    await waitFor(() => stats().holding === 1);
    // another connection is served in full while the first waits
    const other = await milterSession(await negotiated(), { client: '192.0.2.14' });
    expect(other.map((r) => r.command)).toEqual(['c', 'c', 'c', 'c', 'c', 'c']);
    expect(stats().holding).toBe(1);
    const replies = await pending;
    expect(replies.map((r) => r.command)).toEqual(['c', 'c', 'c', 'c', 'c', 'c']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2400);
    // every 2500/3 ms while holding: at least one progress packet came before the MAIL answer
    expect(slow.progress).toBeGreaterThanOrEqual(1);
    const mailAnswer = slow.replies.findIndex((r, i) => i > 2 && r.command === SMFIR.CONTINUE);
    expect(slow.replies.slice(0, mailAnswer).some((r) => r.command === SMFIR.PROGRESS)).toBe(true);
    expect(stats().holding).toBe(0);
  });

  it('an MTA that leaves during a tarpit (reset or close) frees its timers and its session at once', async () => {
    for (const leave of [(c: MilterClient) => c.socket.resetAndDestroy(), (c: MilterClient) => c.socket.end()]) {
      const c = await negotiated();
      void milterSession(c, { client: '203.0.113.6' }).catch(() => []);
      await waitFor(() => stats().holding === 1 && gw.gateway.sessions.count('203.0.113.6') === 1);
      leave(c);
      await waitFor(() => stats().holding === 0 && gw.gateway.sessions.count('203.0.113.6') === 0, 10_000); // far below the 60 s hold
    }
  });

  it('ABORT ends the transaction, not the session; QUIT_NC ends the session and the connection carries the next one', async () => {
    const c = await negotiated();
    await milterSession(c, { client: '192.0.2.20' });
    c.tell({ type: 'abort' });
    // the session goes on: a new transaction on it
    expect((await c.ask({ type: 'mail', sender: '<x@example.org>', args: [] })).command).toBe(SMFIR.CONTINUE);
    expect(gw.gateway.sessions.count('192.0.2.20')).toBe(1);
    c.tell({ type: 'quit_nc' });
    const next = await milterSession(c, { client: '192.0.2.21' }); // no new negotiation
    expect(next.map((r) => r.command)).toEqual(['c', 'c', 'c', 'c', 'c', 'c']);
    expect(gw.gateway.sessions.count('192.0.2.20')).toBe(0);
    expect(gw.gateway.sessions.count('192.0.2.21')).toBe(1);
    c.tell({ type: 'quit' });
    await c.closed;
    await waitFor(() => gw.gateway.sessions.count('192.0.2.21') === 0);
  });

  it('counts a recipient the MTA rejected itself as rcpt_rejected; an accept at connect trusts the session, which still records', async () => {
    const c = await negotiated();
    await milterSession(c, { client: '198.51.100.7', to: ['a@example.net', 'b@example.net', 'c@example.net'] });
    // trusted: no-rcpt (above 1) skipped for the 2nd and 3rd, but all three recorded
    expect(await gw.gateway.store.count('rcpts', '198.51.100.7')).toBe(3);
    c.tell({ type: 'macro', command: 'R', macros: new Map([['{rcpt_mailer}', 'error']]) });
    expect((await c.ask({ type: 'rcpt', recipient: '<nobody@example.net>', args: [] })).command).toBe(SMFIR.CONTINUE);
    expect(await gw.gateway.store.count('bad_rcpt', '198.51.100.7')).toBe(1);
  });

  it('shadow mode logs what would have fired and answers continue', async () => {
    const replies = await milterSession(await negotiated(), { client: '192.0.2.77' });
    expect(replies[1]!.command).toBe(SMFIR.CONTINUE);
    expect(gw.logs.some((l) => l.policy === 'watch-helo' && l.mode === 'shadow')).toBe(true);
  });

  it('a unix-socket or unknown client has no address: nothing counted, nothing refused', async () => {
    const c = await negotiated();
    expect((await c.ask({ type: 'connect', hostname: 'localhost', family: 'unix', port: 0, address: '/var/run/x' })).command).toBe(SMFIR.CONTINUE);
    c.tell({ type: 'quit_nc' });
    expect((await c.ask({ type: 'connect', hostname: 'localhost', family: 'unknown' })).command).toBe(SMFIR.CONTINUE);
    expect((await c.ask({ type: 'helo', name: 'x' })).command).toBe(SMFIR.CONTINUE);
  });

  it('a malformed packet (length 0x7fffffff, a garbage command, a stage before CONNECT) closes only that connection', async () => {
    const steady = await negotiated();
    const before = stats().protocolErrors;
    const huge = await negotiated();
    huge.send(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x43]));
    await huge.closed;
    const garbage = await negotiated();
    garbage.send(Buffer.from([0, 0, 0, 1, 0x5a])); // 'Z'
    await garbage.closed;
    const early = await connect();
    early.send(Buffer.from([0, 0, 0, 2, 0x48, 0])); // HELO before negotiation
    await early.closed;
    const noConnect = await negotiated();
    noConnect.tell({ type: 'mail', sender: '<a@b>', args: [] });
    await noConnect.closed;
    expect(stats().protocolErrors - before).toBe(4);
    const reasons = gw.logs.filter((l) => l.code === 'AG_MILTER_PROTOCOL').map((l) => l.reason);
    expect(reasons).toEqual(expect.arrayContaining(['packet-too-large', 'unknown-command', 'out-of-order']));
    // the connection that behaved is still served
    expect((await milterSession(steady, { client: '192.0.2.30' })).map((r) => r.command)).toEqual(['c', 'c', 'c', 'c', 'c', 'c']);
  });
});

describe('milter front bounds', () => {
  it('closes connections over max_connections at once, and an MTA connection idle past idle_timeout', async () => {
    const gw = await startFronts({ milter: '{ listen: ["127.0.0.1:0"], max_connections: 2, idle_timeout: 1s }', body: '' });
    try {
      const a = await MilterClient.connect({ port: gw.milterPort });
      const b = await MilterClient.connect({ port: gw.milterPort });
      await a.negotiate();
      await b.negotiate();
      const c = await MilterClient.connect({ port: gw.milterPort });
      await c.closed;
      const st = gw.gateway.milter!.stats;
      expect(st.refused).toBe(1);
      expect(gw.logs.some((l) => l.msg === 'milter.max_connections reached: MTA connection closed')).toBe(true);
      // a and b stay silent past idle_timeout
      await Promise.all([a.closed, b.closed]);
      expect(st.idleTimeouts).toBe(2);
      await waitFor(() => st.open === 0);
    } finally {
      await gw.close();
    }
  });
});
