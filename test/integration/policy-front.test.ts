/**
 * The policy-service front over real sockets, driven by a simulated Postfix
 * (bench/mta-client.ts): protocol_state → stage, answers (DUNNO, OK, the reply table's text),
 * sessions tied by the client connection, the data stage once per transaction, a tarpit holding
 * one answer without delaying other connections, and malformed requests closing only their own
 * connection. Postfix itself: postfix-policy.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyClient, policyRequest } from '../../bench/mta-client.js';
import { startFronts, type FrontsGateway } from '../helpers/fronts.js';
import { waitFor } from '../helpers/wait.js';

const BODY = `monitors: ["300,2"]
series:
  conn: { type: cidr, interval: 1h, windows: 2 }
  conn6: { type: cidr_ipv6, interval: 1h, windows: 2, store_prefix: 64 }
  helos: { type: string, interval: 1h, windows: 2 }
  senders: { type: string, interval: 1h, windows: 2 }
  msgs: { type: cidr, interval: 1h, windows: 2 }
  rcpt_n: { type: cidr, interval: 1h, windows: 2 }
  byte_n: { type: cidr, interval: 1h, windows: 2 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: helo, series: helos, key: "{helo}" }
  - { on: mail, series: senders, key: "{mail_from}" }
  - { on: data, series: msgs }
  - { on: data, series: rcpt_n, count: rcpts }
  - { on: data, series: byte_n, count: bytes }
policies:
  - { name: trusted, on: connect, client: [198.51.100.0/24], action: accept }
  - { name: conn24, on: connect, series: conn, mask: 24, above: 3, action: tempfail, client: [100.64.1.0/24] }
  - { name: conn64, on: connect, series: conn6, mask: 64, above: 2, action: tempfail }
  - { name: no-rcpt, on: rcpt, client: [198.51.100.0/24, 203.0.113.66/32], action: reject }
  - { name: slower, on: rcpt, client: [203.0.113.6/32], action: tarpit, delay: 60s }
  - { name: slow, on: rcpt, client: [203.0.113.0/24], action: tarpit, delay: 1500ms }
  - { name: big-sender, on: mail, series: senders, key: "{mail_from}", above: 1, action: reject, mode: shadow }
`;

describe('policy service front (simulated Postfix)', () => {
  let gw: FrontsGateway;
  const clients: PolicyClient[] = [];
  const connect = async (): Promise<PolicyClient> => {
    const c = await PolicyClient.connect({ port: gw.policyPort });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    gw = await startFronts({ policy: true, body: BODY });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await gw?.close();
  });

  it('maps protocol_state to stages, fills the session from the attributes and answers DUNNO', async () => {
    const c = await connect();
    const at = (state: string, extra: Record<string, string | number> = {}) => c.ask(policyRequest(state, '192.0.2.10', { client_port: 41000, ...extra }));
    expect(await at('CONNECT')).toBe('DUNNO');
    expect(await at('EHLO', { helo_name: 'Client.Example' })).toBe('DUNNO');
    expect(await at('MAIL', { sender: 'Alice@Example.org' })).toBe('DUNNO');
    expect(await at('RCPT', { sender: 'Alice@Example.org', recipient: 'bob@example.net', instance: 'i1' })).toBe('DUNNO');
    expect(await at('DATA', { sender: 'Alice@Example.org', recipient_count: 1, instance: 'i1' })).toBe('DUNNO');
    expect(await at('END-OF-MESSAGE', { sender: 'Alice@Example.org', recipient_count: 1, size: 321, instance: 'i1' })).toBe('DUNNO');
    expect(await gw.gateway.store.count('conn', '192.0.2.10')).toBe(1);
    expect(await gw.gateway.store.count('helos', 'Client.Example')).toBe(1);
    expect(await gw.gateway.store.count('senders', 'alice@example.org')).toBe(1);
    // DATA and END-OF-MESSAGE of one transaction: the data stage once; a reception at END-OF-MESSAGE
    expect(await gw.gateway.store.count('msgs', '192.0.2.10')).toBe(1);
    expect(await gw.gateway.store.count('receptions:300,2', '192.0.2.10')).toBe(1);
    // VRFY, ETRN and other request kinds have no stage
    expect(await at('VRFY')).toBe('DUNNO');
    expect(await c.ask({ request: 'something_else', protocol_state: 'RCPT', client_address: '192.0.2.10' })).toBe('DUNNO');
    // policy-service sessions are not in the concurrent-sessions gauge: Postfix never says one ended
    expect(gw.gateway.sessions.count('192.0.2.10')).toBe(0);
  });

  it('count: rcpts from recipient_count and count: bytes from the size at END-OF-MESSAGE, once per message', async () => {
    const c = await connect();
    const at = (state: string, extra: Record<string, string | number> = {}) => c.ask(policyRequest(state, '192.0.2.11', { client_port: 41001, ...extra }));
    const tx = { sender: 'a@example.org', instance: 'i2' };
    expect(await at('CONNECT')).toBe('DUNNO');
    expect(await at('MAIL', { sender: 'a@example.org', size: 1000 })).toBe('DUNNO'); // SIZE= as declared
    expect(await at('RCPT', { ...tx, recipient: 'b@example.net' })).toBe('DUNNO');
    expect(await at('RCPT', { ...tx, recipient: 'c@example.net' })).toBe('DUNNO');
    expect(await at('RCPT', { ...tx, recipient: 'd@example.net' })).toBe('DUNNO');
    // Postfix accepted two of the three (it refused one itself): its recipient_count is what counts
    expect(await at('DATA', { ...tx, recipient_count: 2, size: 1000 })).toBe('DUNNO');
    expect(await at('END-OF-MESSAGE', { ...tx, recipient_count: 2, size: 4567 })).toBe('DUNNO');
    expect(await gw.gateway.store.count('rcpt_n', '192.0.2.11')).toBe(2);
    await waitFor(() => gw.gateway.registry.get('byte_n')!.count('192.0.2.11') > 0);
    expect(await gw.gateway.store.count('byte_n', '192.0.2.11')).toBe(4567); // the received size, once
  });

  it('throttles at /24 and at an IPv6 /64 with the reply table text, naming the session', async () => {
    const c = await connect();
    const v4 = [];
    for (let i = 1; i <= 4; i++) v4.push(await c.ask(policyRequest('CONNECT', `100.64.1.${100 + i}`, { client_port: 42000 + i })));
    expect(v4.slice(0, 3)).toEqual(['DUNNO', 'DUNNO', 'DUNNO']);
    expect(v4[3]).toMatch(/^421 4\.7\.0 Too many connections from your network, try again later \(try again in \d+[sm]\) \[[0-9a-f]{12}@gw\.test\]$/);
    expect(await c.ask(policyRequest('CONNECT', '100.64.2.1'))).toBe('DUNNO'); // another /24
    const v6 = [];
    for (let i = 1; i <= 3; i++) v6.push(await c.ask(policyRequest('CONNECT', `2001:db8:9:9::${i}`, { client_port: 43000 + i })));
    expect(v6.map((a) => a.slice(0, 5))).toEqual(['DUNNO', 'DUNNO', '421 4']);
    expect(await c.ask(policyRequest('CONNECT', '2001:db8:9:a::1'))).toBe('DUNNO');
  });

  it('an accept at CONNECT answers OK and trusts the rest of that SMTP session (same client connection), not the next one', async () => {
    const c = await connect();
    const req = (state: string, port: number, extra: Record<string, string> = {}) => policyRequest(state, '198.51.100.9', { client_port: port, sender: 's@example.org', recipient: 'r@example.net', ...extra });
    expect(await c.ask(req('CONNECT', 44001))).toBe('OK');
    expect(await c.ask(req('RCPT', 44001, { instance: 'x1' }))).toBe('DUNNO'); // no-rcpt skipped: trusted
    // another SMTP connection of the same client that was not checked at CONNECT: not trusted
    expect(await c.ask(req('RCPT', 44002, { instance: 'x2' }))).toMatch(/^550 5\.7\.1 Recipient refused by policy \[[0-9a-f]{12}@gw\.test\]$/);
  });

  it('shadow mode logs what would fire and answers DUNNO', async () => {
    const c = await connect();
    for (let i = 0; i < 2; i++) expect(await c.ask(policyRequest('MAIL', '192.0.2.50', { sender: 'bulk@example.org', client_port: 45000 + i }))).toBe('DUNNO');
    expect(gw.logs.some((l) => l.policy === 'big-sender' && l.mode === 'shadow')).toBe(true);
  });

  it('holds a tarpitted answer back, then DUNNO, while other connections are answered', async () => {
    const slow = await connect();
    const started = Date.now();
    const held = slow.ask(policyRequest('RCPT', '203.0.113.5', { recipient: 'r@example.net', instance: 't1' }));
    await waitFor(() => gw.gateway.policyService!.stats.holding === 1);
    const other = await connect();
    expect(await other.ask(policyRequest('RCPT', '192.0.2.60', { recipient: 'r@example.net', instance: 't2' }))).toBe('DUNNO');
    expect(gw.gateway.policyService!.stats.holding).toBe(1);
    expect(await held).toBe('DUNNO');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    // an MTA that leaves (a reset) during a 60 s hold frees it at once
    const gone = await connect();
    void gone.ask(policyRequest('RCPT', '203.0.113.6', { recipient: 'r@example.net' })).catch(() => '');
    await waitFor(() => gw.gateway.policyService!.stats.holding === 1);
    gone.socket.resetAndDestroy();
    await waitFor(() => gw.gateway.policyService!.stats.holding === 0, 10_000); // far below the 60 s hold
  });

  it("answers a client that half-closes after its request (Exim's ${readsocket}), after a tarpit too, then closes", async () => {
    for (const client of ['192.0.2.90', '203.0.113.90']) {
      const c = await connect();
      const answer = c.ask(policyRequest('RCPT', client, { recipient: 'r@example.net' }));
      c.socket.end();
      expect(await answer).toBe('DUNNO');
      await c.closed;
    }
  });

  it('answers requests of one connection in order, each after the one before', async () => {
    const c = await connect();
    // three requests in one write; the first is held by the tarpit
    const answers = Promise.all([
      c.ask(policyRequest('RCPT', '203.0.113.7', { recipient: 'r@example.net' })),
      c.ask(policyRequest('RCPT', '203.0.113.66', { recipient: 'r@example.net' })),
      c.ask(policyRequest('CONNECT', '192.0.2.70')),
    ]);
    const [a, b, d] = await answers;
    expect(a).toBe('DUNNO');
    expect(b).toMatch(/^550 /);
    expect(d).toBe('DUNNO');
  });

  it('a malformed request (no "=", a line over 8 KiB, a request over 64 KiB) closes only that connection', async () => {
    const steady = await connect();
    const before = gw.gateway.policyService!.stats.protocolErrors;
    const noEq = await connect();
    noEq.send('request=smtpd_access_policy\nthis line has no equals sign\n\n');
    await noEq.closed;
    const longLine = await connect();
    longLine.send(`request=smtpd_access_policy\nsender=${'a'.repeat(9000)}\n\n`);
    await longLine.closed;
    const big = await connect();
    for (let i = 0; i < 10; i++) big.send(`x${i}=${'b'.repeat(7000)}\n`);
    await big.closed;
    expect(gw.gateway.policyService!.stats.protocolErrors - before).toBe(3);
    const reasons = gw.logs.filter((l) => l.code === 'AG_POLICY_PROTOCOL').map((l) => l.reason);
    expect(reasons).toEqual(expect.arrayContaining(['malformed', 'line-too-long', 'request-too-large']));
    expect(await steady.ask(policyRequest('CONNECT', '192.0.2.80'))).toBe('DUNNO');
  });
});

describe('policy service bounds', () => {
  it('closes an MTA connection idle past idle_timeout', async () => {
    const gw = await startFronts({ policy: '{ listen: ["127.0.0.1:0"], idle_timeout: 1s }', body: '' });
    try {
      const c = await PolicyClient.connect({ port: gw.policyPort });
      expect(await c.ask(policyRequest('CONNECT', '192.0.2.1'))).toBe('DUNNO');
      await c.closed;
      expect(gw.gateway.policyService!.stats.idleTimeouts).toBe(1);
      expect(gw.logs.some((l) => l.msg === 'idle MTA connection closed' && l.front === 'policy')).toBe(true);
    } finally {
      await gw.close();
    }
  });
});
