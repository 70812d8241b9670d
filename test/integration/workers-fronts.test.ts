/**
 * The milter (TCP and unix-domain) and policy-service fronts with server.workers: 2 (`auditgate
 * serve`, MTA connections handed to the workers in turn), driven by the simulated MTA of
 * bench/mta-client.ts: limits hold exactly across workers for IPv4 and IPv6 clients, a ban
 * added through the admin API refuses on both fronts, a policy-service session keeps its facts
 * over its Postfix connection, a malformed request closes only its own connection, and /metrics
 * sums the workers' front figures.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MilterClient, policyRequest, PolicyClient, type Target } from '../../bench/mta-client.js';
import { SMFIR } from '../../src/milter/protocol.js';
import { replyCodeOf } from '../../src/milter/reply-decoder.js';
import { killGateways, start } from '../helpers/workers.js';

const clients: Array<{ close(): void }> = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  killGateways();
});

const yaml = (dir: string, sock: string): string => `server:
  hostname: fronts.test
  listen: []
  workers: 2
state_dir: ${join(dir, 'state')}
admin: { listen: "127.0.0.1:0" }
milter: { listen: ["127.0.0.1:0", "unix:${sock}"] }
policy_service: { listen: ["127.0.0.1:0"] }
series:
  conn: { type: cidr, interval: 1h, windows: 2 }
  conn6: { type: cidr_ipv6, interval: 1h, windows: 2 }
  senders: { type: string, interval: 1h, windows: 2 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: rcpt, series: senders, key: "{mail_from}" }
policies:
  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: 2, action: tempfail }
  - { name: per-64, on: connect, series: conn6, mask: 64, windows: [0, 1], above: 2, action: tempfail }
  - { name: sender-rcpts, on: rcpt, series: senders, key: "{mail_from}", windows: [0, 1], above: 3, action: reject }
`;

/** A new MTA connection to the milter, negotiated, asking CONNECT for `ip`: the reply ('c' continue, or a reply code). */
async function milterConnect(at: Target, ip: string): Promise<string> {
  const c = await MilterClient.connect(at);
  clients.push(c);
  await c.negotiate();
  const r = await c.ask({ type: 'connect', hostname: `[${ip}]`, family: ip.includes(':') ? 'ipv6' : 'ipv4', port: 40000, address: ip });
  c.tell({ type: 'quit' });
  if (r.command !== SMFIR.REPLYCODE) return r.command;
  const code = replyCodeOf(r)!;
  return `${code.code} ${code.text}`;
}

async function policyClient(port: number): Promise<PolicyClient> {
  const c = await PolicyClient.connect({ port });
  clients.push(c);
  return c;
}

/** A unix socket file nobody listens on any more: its process was killed with -9. */
async function staleSocket(): Promise<string> {
  const sock = join(mkdtempSync(join(tmpdir(), 'ag-stale-')), 'milter.sock');
  const child = spawn(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('up'))", sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  expect(existsSync(sock)).toBe(true);
  return sock;
}

const hostPort = (a: string): Target => ({ port: Number(a.slice(a.lastIndexOf(':') + 1)), host: '127.0.0.1' });

describe('server.workers: 2, MTA fronts', () => {
  it('serves the milter (TCP and unix) and the policy service from both workers, with limits and bans across them', async () => {
    const sock = await staleSocket(); // a crashed run left its socket file behind: the primary replaces it
    const { up, admin, p } = await start({ workers: 2, policies: '', env: { NODE_CLUSTER_SCHED_POLICY: 'rr' }, text: (dir) => yaml(dir, sock) });
    const milter = up.milter as string[];
    const tcp = hostPort(milter[0]!);
    const unix = { path: milter[1]!.replace(/^unix:/, '') };
    const policyPort = Number((up.policy_service as string[])[0]!.split(':').pop());

    // one limit, counted by both workers' fronts: 2 connects through, then 421 — over TCP and the unix socket alike
    const v4: string[] = [];
    for (let i = 0; i < 6; i++) v4.push(await milterConnect(i % 2 ? unix : tcp, '192.0.2.20'));
    expect(v4.slice(0, 2)).toEqual(['c', 'c']);
    for (const r of v4.slice(2)) expect(r).toMatch(/^421 4\.7\.0 /);
    const v6: string[] = [];
    for (let i = 0; i < 5; i++) v6.push(await milterConnect(tcp, `2001:db8:20::${i + 1}`));
    expect(v6.filter((r) => r === 'c')).toHaveLength(2);

    // the policy service: each Postfix connection a session; the third connect of one client is refused
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) answers.push(await (await policyClient(policyPort)).ask(policyRequest('CONNECT', '198.18.7.7', { client_port: 40100 + i })));
    expect(answers.slice(0, 2)).toEqual(['DUNNO', 'DUNNO']);
    for (const a of answers.slice(2)) expect(a).toMatch(/^421 4\.7\.0 /);

    // a session over one Postfix connection keeps its sender: the fourth RCPT of that sender is refused
    const pc = await policyClient(policyPort);
    const at = (state: string, extra: Record<string, string | number> = {}) => pc.ask(policyRequest(state, '2001:db8:30::1', { client_port: 40200, sender: 'bulk@example.org', ...extra }));
    expect(await at('CONNECT')).toBe('DUNNO');
    expect(await at('MAIL')).toBe('DUNNO');
    const rcpts: string[] = [];
    for (let i = 0; i < 5; i++) rcpts.push(await at('RCPT', { recipient: `r${i}@example.net` }));
    expect(rcpts.slice(0, 3)).toEqual(['DUNNO', 'DUNNO', 'DUNNO']);
    for (const a of rcpts.slice(3)) expect(a).toMatch(/^5\d\d 5\.7\.1 /);

    // a ban by hand: refused at connect by both fronts, whichever worker takes the MTA connection
    const ban = await fetch(`${admin}/bans`, { method: 'POST', body: JSON.stringify({ prefix: '203.0.113.0/24', for: '1h' }), headers: { 'content-type': 'application/json' } });
    expect(ban.status).toBe(200);
    for (let i = 0; i < 2; i++) expect(await milterConnect(tcp, `203.0.113.${i + 1}`)).toMatch(/^421 4\.7\.0 Your network 203\.0\.113\.0\/24 is banned/);
    for (let i = 0; i < 2; i++) expect(await (await policyClient(policyPort)).ask(policyRequest('CONNECT', `203.0.113.${i + 9}`))).toMatch(/^421 4\.7\.0 Your network 203\.0\.113\.0\/24 is banned/);

    // a malformed request closes its own connection only
    const bad = await policyClient(policyPort);
    const good = await policyClient(policyPort);
    bad.socket.write('this is not a policy request\n\n');
    await bad.closed;
    expect(await good.ask(policyRequest('CONNECT', '198.18.8.8'))).toBe('DUNNO');

    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toMatch(/^auditgate_front_requests_total\{front="milter"\} 13$/m); // 6 + 5 + 2 CONNECTs
    expect(metrics).toMatch(/^auditgate_front_protocol_errors_total\{front="policy"\} 1$/m);
    expect(metrics).toMatch(/^auditgate_decisions_total\{policy="per-ip",action="tempfail",mode="enforce"\} 6$/m); // 4 milter + 2 policy
    const perWorker = [...metrics.matchAll(/^auditgate_worker_ipc_round_trips_total\{worker="(\d)"\} (\d+)$/gm)];
    expect(perWorker.map((m) => Number(m[2]) > 0)).toEqual([true, true]); // both workers served

    // stop: every worker drains, the unix socket file goes
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(existsSync(unix.path)).toBe(false);
  }, 120_000);
});
