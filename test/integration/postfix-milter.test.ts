/**
 * The milter front behind a real Postfix (a private instance, PROXY headers to present many
 * client addresses), in one gateway process that also runs the SMTP proxy: throttles at /32,
 * /24 and an IPv6 /64, a tarpit held past Postfix's own milter_command_timeout with
 * SMFIR_PROGRESS (the message still delivered, another client served meanwhile), shadow mode,
 * an accept policy, the proxy and the milter counting into the same series, and malformed
 * milter packets closing only their own connection while Postfix keeps being served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MilterClient } from '../../bench/mta-client.js';
import { PostfixInstance } from '../helpers/postfix.js';
import { requireProgram } from '../helpers/programs.js';
import { startFronts, type FrontsGateway } from '../helpers/fronts.js';
import { proxyV1, sendMail, SmtpTestClient, startBackend, type Backend } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const ok = requireProgram('postfix', { pkg: 'postfix', purpose: 'the milter front tests through Postfix', root: true });

const BODY = `series:
  conn: { type: cidr, interval: 1h, windows: 2 }
  conn6: { type: cidr_ipv6, interval: 1h, windows: 2, store_prefix: 64 }
  bad_rcpt: { type: cidr, interval: 1h, windows: 2 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: rcpt_rejected, series: bad_rcpt }
policies:
  - { name: dha, on: rcpt, series: bad_rcpt, mask: 32, above: 2, action: tempfail, reply: "451 4.7.1 Too many unknown recipients" }
  - { name: trusted, on: connect, client: [198.51.100.0/24], action: accept }
  - { name: conn32, on: connect, series: conn, mask: 32, above: 2, action: tempfail, client: [192.0.2.0/24, 100.64.5.0/24] }
  - { name: conn24, on: connect, series: conn, mask: 24, above: 3, action: tempfail, client: [100.64.1.0/24] }
  - { name: conn64, on: connect, series: conn6, mask: 64, above: 2, action: tempfail, client: ["2001:db8:1::/48"] }
  - { name: slow, on: mail, client: [203.0.113.0/24], action: tarpit, delay: 6s }
  - { name: refuse-rcpt, on: rcpt, client: [198.51.100.0/24, 100.64.9.0/24], action: reject }
  - { name: watch, on: rcpt, client: [100.64.8.0/24], action: reject, mode: shadow }
`;

/** The message reached the backend (Postfix queues first: wait for the delivery). */
const TAG = (n: number) => `Subject: t${n}\r\n\r\nhello\r\n`;

describe.skipIf(!ok)('milter front behind Postfix', () => {
  let backend: Backend;
  let gw: FrontsGateway;
  let pf: PostfixInstance;
  let n = 0;

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startFronts({ milter: true, relay: `smtp://127.0.0.1:${backend.port}`, body: BODY });
    // milter_command_timeout below the tarpit's delay: only SMFIR_PROGRESS keeps Postfix waiting
    pf = await PostfixInstance.start({ relayPort: backend.port, milter: { port: gw.milterPort }, mainCf: {
        milter_command_timeout: '4s',
        // Postfix itself refuses unknown1..3@ recipients; with SMFIP_RCPT_REJ the milter still hears of them
        smtpd_recipient_restrictions: `check_recipient_access inline:{${[1, 2, 3].map((i) => `unknown${i}@example.net=REJECT`).join(', ')}}, permit`,
      },
    });
  });

  afterAll(async () => {
    if (process.env.DEBUG_FRONTS) console.log(pf.log());
    await pf?.stop();
    await gw?.close();
    await backend?.close();
  });

  const dump = () => `--- ${pf.maillog} ---\n${pf.log().slice(-6000)}`;
  /** One SMTP session through Postfix as `client`; returns the reply codes and whether its message arrived. */
  const viaPostfix = async (client: string, to = ['rcpt@example.net']) => {
    const id = ++n;
    const replies = await sendMail(pf.port, { preface: proxyV1(client), to, body: TAG(id) });
    return { replies, codes: replies.map((r) => r.code), id };
  };
  const delivered = (id: number) => backend.messages.some((m) => m.raw.toString('latin1').includes(`Subject: t${id}\r\n`));
  const waitDelivered = async (id: number) => {
    try {
      await waitFor(() => delivered(id), 20_000);
    } catch {
      throw new Error(`message t${id} was not delivered\n${dump()}`);
    }
  };

  it('throttles at /32, /24 and an IPv6 /64: the client gets 421, the maillog our reply with [cid@host]', async () => {
    for (const clients of [
      ['192.0.2.10', '192.0.2.10', '192.0.2.10'],
      ['100.64.1.1', '100.64.1.2', '100.64.1.3', '100.64.1.4'],
      ['2001:db8:1:1::1', '2001:db8:1:1::2', '2001:db8:1:1::3'],
    ]) {
      const results = [];
      for (const c of clients) results.push(await viaPostfix(c));
      const last = results.pop()!;
      for (const r of results) {
        expect(r.codes, dump()).toEqual([220, 250, 250, 250, 250, 221]);
        await waitDelivered(r.id);
      }
      // a 421 at connect: Postfix greets with its own 421 and logs the milter's reply
      expect(last.codes, dump()).toEqual([421]);
      const client = clients[clients.length - 1]!;
      const fired = gw.logs.filter((l) => l.stage === 'connect' && l.client === client && l.mode === 'enforce' && l.msg === 'policy fired');
      expect(fired).toHaveLength(1);
      const line = `milter-reject: CONNECT from unknown[${client}]: 421 4.7.0 Too many connections from your network, try again later`;
      await waitFor(() => pf.log().includes(line), 10_000);
      expect(pf.log()).toMatch(new RegExp(`${line.replace(/[[\].()]/g, '\\$&')} \\(try again in \\d+[sm]\\) \\[${String(fired[0]!.cid)}@gw\\.test\\]`));
    }
    // a neighbour outside the throttled prefix gets through
    const other = await viaPostfix('2001:db8:1:2::1');
    expect(other.codes, dump()).toEqual([220, 250, 250, 250, 250, 221]);
  });

  it('holds a tarpitted MAIL past milter_command_timeout with SMFIR_PROGRESS: delivered, and another client is served meanwhile', async () => {
    const slowStarted = Date.now();
    const slow = viaPostfix('203.0.113.5');
    await waitFor(() => gw.gateway.milter!.stats.holding === 1, 10_000);
    const quick = await viaPostfix('192.0.2.40');
    expect(quick.codes, dump()).toEqual([220, 250, 250, 250, 250, 221]);
    expect(gw.gateway.milter!.stats.holding).toBe(1); // still holding the slow one
    const s = await slow;
    expect(s.codes, dump()).toEqual([220, 250, 250, 250, 250, 221]);
    expect(Date.now() - slowStarted).toBeGreaterThanOrEqual(6000);
    await waitDelivered(s.id);
    expect(pf.log()).not.toMatch(/milter .* timeout/i);
  });

  it('shadow mode only logs; an accept at connect trusts the session (a later refusal policy is skipped)', async () => {
    const shadow = await viaPostfix('100.64.8.1');
    expect(shadow.codes, dump()).toEqual([220, 250, 250, 250, 250, 221]);
    await waitDelivered(shadow.id);
    expect(gw.logs.some((l) => l.policy === 'watch' && l.mode === 'shadow')).toBe(true);

    const trusted = await viaPostfix('198.51.100.7');
    expect(trusted.codes, dump()).toEqual([220, 250, 250, 250, 250, 221]);
    await waitDelivered(trusted.id);
    // the same refusal policy without the accept: the RCPT is refused with the table's text
    const refused = await viaPostfix('100.64.9.1');
    expect(refused.codes, dump()).toEqual([220, 250, 250, 550, 554, 221]);
    expect(refused.replies[3]!.text).toMatch(/^5\.7\.1 Recipient refused by policy \[[0-9a-f]{12}@gw\.test\]$/);
  });

  it('hears of recipients Postfix refused itself (SMFIP_RCPT_REJ): rcpt_rejected counts, and a directory harvest is stopped', async () => {
    const r = await viaPostfix('192.0.2.60', ['unknown1@example.net', 'unknown2@example.net', 'unknown3@example.net', 'real@example.net']);
    expect(r.codes.slice(0, 6), dump()).toEqual([220, 250, 250, 554, 554, 554]);
    expect(await gw.gateway.store.count('bad_rcpt', '192.0.2.60')).toBe(3);
    expect(r.replies[6]).toMatchObject({ code: 451 });
    expect(r.replies[6]!.text).toMatch(/^4\.7\.1 Too many unknown recipients \(try again in \d+[sm]\) \[[0-9a-f]{12}@gw\.test\]$/);
  });

  it('one process: the SMTP proxy and the milter count into the same series', async () => {
    const client = '100.64.5.5';
    const proxied = await sendMail(gw.smtpPort, { preface: proxyV1(client), body: TAG(++n) });
    expect(proxied.map((r) => r.code)).toEqual([220, 250, 250, 250, 250, 221]);
    const milter = await viaPostfix(client);
    expect(milter.codes, dump()).toEqual([220, 250, 250, 250, 250, 221]);
    expect(await gw.gateway.store.count('conn', client)).toBe(2);
    // above: 2 — the third connection is refused, whichever front it comes through
    const third = await sendMail(gw.smtpPort, { preface: proxyV1(client) });
    expect(third[0]!.code).toBe(421);
  });

  it('a malformed milter packet (length 0x7fffffff, a garbage command) closes only its own connection; Postfix is served throughout', async () => {
    // a Postfix session under way, its milter connection open
    const open = await SmtpTestClient.connect(pf.port, { preface: proxyV1('192.0.2.50') });
    expect((await open.cmd('EHLO client.test')).code).toBe(250);
    expect((await open.cmd('MAIL FROM:<sender@example.org>')).code).toBe(250);
    const before = gw.gateway.milter!.stats.protocolErrors;
    const huge = await MilterClient.connect({ port: gw.milterPort });
    huge.send(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x4f]));
    const garbage = await MilterClient.connect({ port: gw.milterPort });
    await garbage.negotiate();
    garbage.send(Buffer.from([0, 0, 0, 3, 0xfe, 0x01, 0x02]));
    await Promise.all([huge.closed, garbage.closed]);
    expect(gw.gateway.milter!.stats.protocolErrors - before).toBe(2);
    // the session that was under way completes
    expect((await open.cmd('RCPT TO:<rcpt@example.net>')).code).toBe(250);
    const id = ++n;
    expect((await open.data(TAG(id))).code).toBe(250);
    await open.cmd('QUIT');
    open.close();
    await waitDelivered(id);
    // and new sessions are served
    const after = await viaPostfix('192.0.2.51');
    expect(after.codes, dump()).toEqual([220, 250, 250, 250, 250, 221]);
    await waitDelivered(after.id);
  });
});
