/**
 * The codecs against a real MTA: a private Postfix calls a milter and a policy service, both
 * tiny stubs built on src/milter and src/policy-service, for every SMTP stage. Nothing Postfix
 * sends is a protocol error; what it sends decodes to what the client did; a milter
 * SMFIR_REPLYCODE and a policy "550 ..." action reach the SMTP client as written.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyProtocolError } from '../../src/errors.js';
import { SMFIP, type MilterCommand } from '../../src/milter/protocol.js';
import { encodeReplyCode } from '../../src/milter/replies.js';
import { PolicyDecoder, encodeAction, protocolStateToStage, type PolicyRequest } from '../../src/policy-service/codec.js';
import { startStubMilter, type StubMilter } from '../helpers/milter-stub.js';
import { PostfixInstance } from '../helpers/postfix.js';
import { requireProgram } from '../helpers/programs.js';
import { proxyV1, sendMail, startBackend, type Backend } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const ok = requireProgram('postfix', { pkg: 'postfix', purpose: 'the Postfix milter / policy codec tests', root: true });

interface PolicyStub {
  port: number;
  requests: PolicyRequest[];
  errors: PolicyProtocolError[];
  close(): Promise<void>;
}

/** Answers DUNNO, or 550 for recipient policy-reject@...; a bad request closes the connection. */
async function startPolicyStub(): Promise<PolicyStub> {
  const stub: PolicyStub = { port: 0, requests: [], errors: [], close: async () => {} };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    const d = new PolicyDecoder();
    sock.on('data', (chunk: Buffer) => {
      const r = d.push(chunk);
      for (const q of r.requests) {
        stub.requests.push(q);
        sock.write(encodeAction(q.recipient?.startsWith('policy-reject@') ? { code: 550, text: '5.7.1 Refused by policy [t2@gw.test]' } : 'DUNNO'));
      }
      if (r.error) {
        stub.errors.push(r.error);
        sock.destroy();
      }
    });
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stub.port = (server.address() as net.AddressInfo).port;
  stub.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return stub;
}

describe.skipIf(!ok)('Postfix → codec-built milter and policy service', () => {
  let backend: Backend;
  let milter: StubMilter;
  let policy: PolicyStub;
  let pf: PostfixInstance;

  beforeAll(async () => {
    backend = await startBackend();
    milter = await startStubMilter({
      answer: (c) => (c.type === 'rcpt' && c.recipient.startsWith('<tempfail-me@') ? encodeReplyCode(451, '4.7.1 Rate limit exceeded (100% full) [t1@gw.test]') : undefined),
    });
    policy = await startPolicyStub();
    pf = await PostfixInstance.start({
      relayPort: backend.port,
      milter: { port: milter.port },
      policy: { port: policy.port, restrictions: ['client', 'helo', 'sender', 'recipient', 'data', 'end_of_data'] },
    });
  });

  afterAll(async () => {
    await pf?.stop();
    await milter?.close();
    await policy?.close();
    await backend?.close();
  });

  const dump = () => `--- ${pf.maillog} ---\n${pf.log()}`;

  it('IPv4 client: every stage reaches both, refusals reach the client as written', async () => {
    const firstSession = milter.sessions.length;
    const firstRequest = policy.requests.length;
    const replies = await sendMail(pf.port, { preface: proxyV1('192.0.2.7', 40001), to: ['ok@example.net', 'tempfail-me@example.net', 'policy-reject@example.net'] });
    expect(
      replies.map((r) => r.code),
      dump(),
    ).toEqual([220, 250, 250, 250, 451, 550, 250, 221]);
    expect(replies[4]!.text).toBe('4.7.1 Rate limit exceeded (100% full) [t1@gw.test]');
    // Postfix puts its own context between the enhanced code and the policy's text
    expect(replies[5]!.text).toBe('5.7.1 <policy-reject@example.net>: Recipient address rejected: Refused by policy [t2@gw.test]');
    await waitFor(() => backend.messages.length === 1, 15_000);
    expect(backend.messages[0]!.to).toEqual(['ok@example.net']);
    await waitFor(() => milter.sessions[firstSession]?.closed === true, 10_000);

    // milter: negotiated against Postfix's real offer, every command decoded
    const s = milter.sessions[firstSession]!;
    expect(s.error).toBeUndefined();
    expect(s.commands[0]).toEqual({ type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff });
    expect(s.negotiation!.reply.protocol).toBe(SMFIP.NOBODY | SMFIP.NOHDRS | SMFIP.NOEOH | SMFIP.NOUNKNOWN);
    const events = s.commands.filter((c) => c.type !== 'macro' && c.type !== 'optneg');
    // Postfix sends SMFIC_ABORT after the end of message (the transaction is over) and again
    // at QUIT: an abort is not "the client broke off"
    const types = events.map((c) => c.type);
    expect(types.filter((t) => t !== 'abort')).toEqual(['connect', 'helo', 'mail', 'rcpt', 'rcpt', 'data', 'eom', 'quit']);
    expect(types.indexOf('abort')).toBeGreaterThan(types.indexOf('eom'));
    expect(events[0]).toEqual({ type: 'connect', hostname: '[192.0.2.7]', family: 'ipv4', port: 40001, address: '192.0.2.7' });
    expect(events[1]).toEqual({ type: 'helo', name: 'client.test' });
    expect(events[2]).toEqual({ type: 'mail', sender: '<sender@example.org>', args: [] });
    const macros = (cmd: string) => (s.commands.find((c) => c.type === 'macro' && c.command === cmd) as Extract<MilterCommand, { type: 'macro' }> | undefined)?.macros;
    expect(macros('C')?.get('j')).toBe('postfix.test');
    expect(macros('M')?.get('{mail_addr}')).toBe('sender@example.org');
    expect(macros('R')?.get('{rcpt_addr}')).toBe('ok@example.net');

    // policy: one request per stage, all for the proxied client
    expect(policy.errors).toEqual([]);
    const requests = policy.requests.slice(firstRequest);
    expect(requests.map((q) => q.protocol_state)).toEqual(['CONNECT', 'EHLO', 'MAIL', 'RCPT', 'RCPT', 'RCPT', 'DATA', 'END-OF-MESSAGE']);
    expect(requests.map((q) => protocolStateToStage(q.protocol_state))).toEqual(['connect', 'helo', 'mail', 'rcpt', 'rcpt', 'rcpt', 'data', 'data']);
    for (const q of requests) expect(q).toMatchObject({ request: 'smtpd_access_policy', client_address: '192.0.2.7', client_port: 40001 });
    expect(requests[3]).toMatchObject({ sender: 'sender@example.org', recipient: 'ok@example.net', helo_name: 'client.test' });
    expect(requests[7]!.recipient_count).toBe(1);
  });

  it('IPv6 client: CONNECT family 6, policy client_address', async () => {
    const firstSession = milter.sessions.length;
    const firstRequest = policy.requests.length;
    const replies = await sendMail(pf.port, { preface: proxyV1('2001:db8::7', 40002) });
    expect(
      replies.map((r) => r.code),
      dump(),
    ).toEqual([220, 250, 250, 250, 250, 221]);
    await waitFor(() => backend.messages.length === 2, 15_000);
    await waitFor(() => milter.sessions[firstSession]?.closed === true, 10_000);
    const s = milter.sessions[firstSession]!;
    expect(s.error).toBeUndefined();
    expect(s.commands.find((c) => c.type === 'connect')).toEqual({ type: 'connect', hostname: '[2001:db8::7]', family: 'ipv6', port: 40002, address: '2001:db8::7' });
    expect(policy.requests[firstRequest]).toMatchObject({ protocol_state: 'CONNECT', client_address: '2001:db8::7' });
  });
});
