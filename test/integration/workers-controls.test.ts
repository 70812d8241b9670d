/**
 * Bans, protected networks and alerts with server.workers: 2 (`auditgate serve`, connections
 * handed to the workers in turn, IPv4 and IPv6 clients through PROXY headers): a ban a policy
 * issues in one worker refuses the client in every worker; a ban added or lifted through the
 * admin API holds for the very next connection, whichever worker takes it; protected clients
 * are never refused or banned; alerts are deduplicated across workers by the primary.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { receiver, type Receiver } from '../helpers/alert-receiver.js';
import { proxyV1, SmtpTestClient } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';
import { burst, configText, count, getJson, killGateways, start } from '../helpers/workers.js';

const receivers: Receiver[] = [];
afterEach(async () => {
  killGateways();
  for (const r of receivers.splice(0)) await r.close();
});

/** One connection at a time from `ip`, `n` times: the greeting texts ("220 …", "421 4.7.0 …"). */
async function one(port: number, ip: string, n = 1): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = await SmtpTestClient.connect(port, { preface: proxyV1(ip, 41000 + i) });
    out.push(`${c.greeting.code} ${c.greeting.text}`);
    c.close();
  }
  return out;
}

const banned = (prefix: string) => new RegExp(`^421 4\\.7\\.0 Your network ${prefix.replace(/[./]/g, (m) => `\\${m}`)} is banned`);

async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${base}${path}`, { method, ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe('server.workers: 2, operator controls', () => {
  it('bans (by policy and by hand), protected networks and alerts hold across workers', async () => {
    const hook = await receiver('ok');
    receivers.push(hook);
    const { port, admin, p } = await start({
      workers: 2,
      env: { NODE_CLUSTER_SCHED_POLICY: 'rr' }, // connections go to the workers in turn: consecutive connects meet both
      policies: `  - { name: ban-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: 3, action: tempfail, ban: 10m }
  - { name: ban-64, on: connect, series: conn6, mask: 64, windows: [0, 1], above: 3, action: tempfail, ban: 10m }
  - { name: per-24, on: connect, client: [198.18.0.0/15, 198.51.100.0/24], series: conn, mask: 24, windows: [0, 1], above: 2, action: tempfail }`,
      extra: `protected: [198.51.100.0/24]
alerts:
  - { name: ops, url: "${hook.url}", policies: [ban-ip, per-24], min_interval: 1h }
`,
    });
    expect(p.lines.some((l) => /not applied|not written/.test(String(l.msg)))).toBe(false); // no start-up warning any more

    // a policy's ban: the fourth connect is refused by the policy and bans the /32; every later one, on either worker, by the ban
    const v4 = await one(port, '203.0.113.5', 4);
    expect(v4.map((g) => g.slice(0, 3))).toEqual(['220', '220', '220', '421']);
    expect(v4[3]).not.toMatch(/banned/);
    const bans = async () => ((await getJson(`${admin}/bans`)).bans as Array<{ prefix: string; policy: string; seconds_left: number }>).map((b) => `${b.prefix} ${b.policy}`);
    expect(await bans()).toEqual(['203.0.113.5/32 ban-ip']);
    for (const g of await one(port, '203.0.113.5', 4)) expect(g).toMatch(banned('203.0.113.5/32'));
    // IPv6 at the policy's mask, /64
    await one(port, '2001:db8:5:6::1', 4);
    // the primary issued it, so its change went to every worker ahead of the next connection
    // (round-robin hands connections over the same channel); until then the other worker may not know
    for (let i = 0; i < 500 && !(await bans()).includes('2001:db8:5:6::/64 ban-64'); i++) await new Promise((r) => setTimeout(r, 10));
    for (const g of await one(port, '2001:db8:5:6::abcd', 4)) expect(g).toMatch(banned('2001:db8:5:6::/64'));
    expect((await one(port, '2001:db8:5:7::1'))[0]).toMatch(/^220 /);

    // by hand: the next connection, whichever worker takes it, is refused; a lift lets the next one in
    expect((await api(admin, 'POST', '/bans', { prefix: '192.0.2.0/24', for: '1h' })).status).toBe(200);
    for (const g of await one(port, '192.0.2.77', 4)) expect(g).toMatch(banned('192.0.2.0/24'));
    expect((await api(admin, 'POST', '/bans', { prefix: '2001:db8:9::/48', for: 600 })).status).toBe(200);
    expect((await burst(port, 4, (i) => `2001:db8:9:${i}::1`)).every((c) => c === 421)).toBe(true);
    expect((await api(admin, 'DELETE', '/bans?prefix=192.0.2.0/24')).status).toBe(200);
    for (const g of await one(port, '192.0.2.78', 2)) expect(g).toMatch(/^220 /);

    // protected: never refused (the policy fires as mode protected), never banned
    expect(count(await burst(port, 6, (i) => `198.51.100.${i + 1}`), 220)).toBe(6);
    expect(count(await burst(port, 6, (i) => `198.18.0.${i + 1}`), 220)).toBe(2); // the same policy refuses unprotected clients
    expect(await api(admin, 'POST', '/bans', { prefix: '198.51.100.0/25', for: '1h' })).toMatchObject({ status: 409, body: { error: expect.stringMatching(/covers the protected network 198\.51\.100\.0\/24/) } });

    // alerts: one per policy and key, though the firings happened in both workers
    await waitFor(() => hook.requests.length >= 3, 20_000);
    const metrics = await (await fetch(`${admin}/metrics`)).text(); // a round trip to every worker: their firings reached the primary
    const sent = hook.requests.map((r) => `${String(r.body.policy)} ${String(r.body.key)} ${String(r.body.mode)}`).sort();
    expect(sent).toEqual(['ban-ip 203.0.113.5/32 enforce', 'per-24 198.18.0.0/24 enforce', 'per-24 198.51.100.0/24 protected']);
    expect(hook.requests[0]!.body).toMatchObject({ alert: 'ops', node: 'workers.test' });
    expect(metrics).toMatch(/^auditgate_bans_issued_total\{policy="ban-ip"\} 1$/m);
    expect(metrics).toMatch(/^auditgate_bans_issued_total\{policy="ban-64"\} 1$/m);
    expect(metrics).toMatch(/^auditgate_bans_refused_total 16$/m); // 4 + 4 + 4 + 4 refused by a ban, summed over the workers
    expect(metrics).toMatch(/^auditgate_decisions_total\{policy="per-24",action="tempfail",mode="protected"\} 4$/m);
  }, 120_000);
});

describe('server.workers: 2, reload', () => {
  it('SIGHUP applies new protected networks and a journal in every worker', async () => {
    const policies = '  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: 1, action: tempfail }';
    const { p, port, file, dir } = await start({ workers: 2, env: { NODE_CLUSTER_SCHED_POLICY: 'rr' }, policies });
    expect(count(await burst(port, 4, () => '198.51.100.1'), 220)).toBe(1);
    const journal = join(dir, 'journal');
    writeFileSync(file, configText(dir, { workers: 2, relay: `dir:${join(dir, 'mail')}`, policies, extra: `protected: [198.51.100.0/24]\njournal: { dir: ${journal} }\n` }));
    p.child.kill('SIGHUP');
    expect(await p.waitFor((l) => l.msg === 'configuration reloaded')).toMatchObject({ workers: 2 });
    expect(count(await burst(port, 4, () => '198.51.100.1'), 220)).toBe(4); // protected now, on both workers
    expect(count(await burst(port, 4, () => '192.0.2.1'), 220)).toBe(1);
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    const lines = readdirSync(journal).flatMap((f) => readFileSync(join(journal, f), 'utf8').trim().split('\n')).map((l) => JSON.parse(l) as { e: string; a?: string; o?: string });
    const connects = lines.filter((l) => l.e === 'connect');
    expect(connects.filter((l) => l.a === '198.51.100.1').map((l) => l.o ?? 'continue')).toEqual(['continue', 'continue', 'continue', 'continue']);
    expect(connects.filter((l) => l.a === '192.0.2.1' && l.o === 'tempfail')).toHaveLength(3);
  }, 120_000);
});

describe('server.workers: 2, restart', () => {
  it('a ban saved before a restart refuses the client in every worker after it', async () => {
    const first = await start({ workers: 2, policies: '' });
    expect((await api(first.admin, 'POST', '/bans', { prefix: '2001:db8:77::/48', for: '1h' })).status).toBe(200);
    first.p.child.kill('SIGTERM');
    expect(await first.p.exit).toBe(0);
    const { port } = await start({ workers: 2, policies: '', dir: first.dir, env: { NODE_CLUSTER_SCHED_POLICY: 'rr' } });
    const codes = await burst(port, 4, (i) => `2001:db8:77:${i}::1`);
    expect(codes).toEqual([421, 421, 421, 421]);
    expect(await one(port, '2001:db8:78::1')).toEqual([expect.stringMatching(/^220 /)]);
  }, 120_000);
});
