/**
 * The policy-service front behind a real Postfix (check_policy_service in the client, helo,
 * sender, recipient, data and end-of-data restrictions; smtpd_delay_reject = no, so the client
 * check runs at CONNECT): throttles at /32, /24 and an IPv6 /64, a tarpit holding one answer
 * while another client is served, shadow mode, an accept policy (OK, and the SMTP session
 * trusted), the data stage counted once per message, and malformed requests closing only their
 * own connection while Postfix keeps being served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyClient } from '../../bench/mta-client.js';
import { PostfixInstance } from '../helpers/postfix.js';
import { requireProgram } from '../helpers/programs.js';
import { startFronts, type FrontsGateway } from '../helpers/fronts.js';
import { proxyV1, sendMail, SmtpTestClient, startBackend, type Backend } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const ok = requireProgram('postfix', { pkg: 'postfix', purpose: 'the policy service tests through Postfix', root: true });

const BODY = `monitors: ["300,2"]
series:
  conn: { type: cidr, interval: 1h, windows: 2 }
  conn6: { type: cidr_ipv6, interval: 1h, windows: 2, store_prefix: 64 }
  msgs: { type: cidr, interval: 1h, windows: 2 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: data, series: msgs }
policies:
  - { name: trusted, on: connect, client: [198.51.100.0/24], action: accept }
  - { name: conn32, on: connect, series: conn, mask: 32, above: 2, action: tempfail, client: [192.0.2.0/24] }
  - { name: conn24, on: connect, series: conn, mask: 24, above: 3, action: tempfail, client: [100.64.1.0/24] }
  - { name: conn64, on: connect, series: conn6, mask: 64, above: 2, action: tempfail, client: ["2001:db8:1::/48"] }
  - { name: slow, on: rcpt, client: [203.0.113.0/24], action: tarpit, delay: 2500ms }
  - { name: refuse-rcpt, on: rcpt, client: [198.51.100.0/24, 100.64.9.0/24], action: reject }
  - { name: watch, on: rcpt, client: [100.64.8.0/24], action: reject, mode: shadow }
`;

const TAG = (n: number) => `Subject: p${n}\r\n\r\nhello\r\n`;

describe.skipIf(!ok)('policy service behind Postfix', () => {
  let backend: Backend;
  let gw: FrontsGateway;
  let pf: PostfixInstance;
  let n = 0;

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startFronts({ policy: true, body: BODY });
    pf = await PostfixInstance.start({ relayPort: backend.port, policy: { port: gw.policyPort, restrictions: ['client', 'helo', 'sender', 'recipient', 'data', 'end_of_data'] } });
  });

  afterAll(async () => {
    if (process.env.DEBUG_FRONTS) console.log(pf.log());
    await pf?.stop();
    await gw?.close();
    await backend?.close();
  });

  const dump = () => `--- ${pf.maillog} ---\n${pf.log().slice(-6000)}`;
  const viaPostfix = async (client: string) => {
    const id = ++n;
    const replies = await sendMail(pf.port, { preface: proxyV1(client, 41000 + id), body: TAG(id) });
    return { replies, codes: replies.map((r) => r.code), id };
  };
  const waitDelivered = async (id: number) => {
    try {
      await waitFor(() => backend.messages.some((m) => m.raw.toString('latin1').includes(`Subject: p${id}\r\n`)), 20_000);
    } catch {
      throw new Error(`message p${id} was not delivered\n${dump()}`);
    }
  };
  const OK = [220, 250, 250, 250, 250, 221];

  it('throttles at /32, /24 and an IPv6 /64 with the reply table text (after Postfix\'s own prefix) and [cid@host]', async () => {
    for (const clients of [
      ['192.0.2.10', '192.0.2.10', '192.0.2.10'],
      ['100.64.1.1', '100.64.1.2', '100.64.1.3', '100.64.1.4'],
      ['2001:db8:1:1::1', '2001:db8:1:1::2', '2001:db8:1:1::3'],
    ]) {
      const results = [];
      for (const c of clients) results.push(await viaPostfix(c));
      const last = results.pop()!;
      for (const r of results) {
        expect(r.codes, dump()).toEqual(OK);
        await waitDelivered(r.id);
      }
      // the client check runs at connect: Postfix greets with the 421 and hangs up
      expect(last.codes, dump()).toEqual([421]);
      expect(last.replies[0]!.text).toMatch(/^4\.7\.0 .*: Client host rejected: Too many connections from your network, try again later \(try again in \d+[sm]\) \[[0-9a-f]{12}@gw\.test\]$/);
    }
    expect((await viaPostfix('2001:db8:1:2::1')).codes, dump()).toEqual(OK);
  });

  it('counts the data stage once per message (DATA and END-OF-MESSAGE) and a reception at END-OF-MESSAGE', async () => {
    const r = await viaPostfix('192.0.2.20');
    expect(r.codes, dump()).toEqual(OK);
    await waitDelivered(r.id);
    expect(await gw.gateway.store.count('msgs', '192.0.2.20')).toBe(1);
    expect(await gw.gateway.store.count('receptions:300,2', '192.0.2.20')).toBe(1);
    expect(await gw.gateway.store.count('conn', '192.0.2.20')).toBe(1);
  });

  it('holds a tarpitted RCPT answer while another client is served; the message is delivered', async () => {
    const started = Date.now();
    const slow = viaPostfix('203.0.113.5');
    await waitFor(() => gw.gateway.policyService!.stats.holding === 1, 10_000);
    const quick = await viaPostfix('192.0.2.40');
    expect(quick.codes, dump()).toEqual(OK);
    expect(gw.gateway.policyService!.stats.holding).toBe(1);
    const s = await slow;
    expect(s.codes, dump()).toEqual(OK);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2400);
    await waitDelivered(s.id);
  });

  it('shadow mode only logs; an accept answers OK and trusts the SMTP session; without it the RCPT is refused', async () => {
    const shadow = await viaPostfix('100.64.8.1');
    expect(shadow.codes, dump()).toEqual(OK);
    expect(gw.logs.some((l) => l.policy === 'watch' && l.mode === 'shadow')).toBe(true);
    const trusted = await viaPostfix('198.51.100.7');
    expect(trusted.codes, dump()).toEqual(OK);
    await waitDelivered(trusted.id);
    const refused = await viaPostfix('100.64.9.1');
    expect(refused.codes, dump()).toEqual([220, 250, 250, 550, 554, 221]);
    expect(refused.replies[3]!.text).toMatch(/^5\.7\.1 <rcpt@example\.net>: Recipient address rejected: Recipient refused by policy \[[0-9a-f]{12}@gw\.test\]$/);
  });

  it('a malformed policy request closes only its own connection; Postfix is served throughout', async () => {
    const open = await SmtpTestClient.connect(pf.port, { preface: proxyV1('192.0.2.50') });
    expect((await open.cmd('EHLO client.test')).code).toBe(250);
    const before = gw.gateway.policyService!.stats.protocolErrors;
    const bad = await PolicyClient.connect({ port: gw.policyPort });
    bad.send('request=smtpd_access_policy\nprotocol_state RCPT\n\n');
    const long = await PolicyClient.connect({ port: gw.policyPort });
    long.send(`request=smtpd_access_policy\nsender=${'x'.repeat(9000)}\n\n`);
    await Promise.all([bad.closed, long.closed]);
    expect(gw.gateway.policyService!.stats.protocolErrors - before).toBe(2);
    expect((await open.cmd('MAIL FROM:<sender@example.org>')).code).toBe(250);
    expect((await open.cmd('RCPT TO:<rcpt@example.net>')).code).toBe(250);
    const id = ++n;
    expect((await open.data(TAG(id))).code).toBe(250);
    await open.cmd('QUIT');
    open.close();
    await waitDelivered(id);
    expect((await viaPostfix('192.0.2.51')).codes, dump()).toEqual(OK);
  });
});
