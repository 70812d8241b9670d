/**
 * server.workers > 1 as an operator runs it: `auditgate serve` (dist/) with two and three worker
 * processes behind one listening port, clients presenting many IPv4 and IPv6 addresses through
 * PROXY headers, a real backend. Limits hold exactly across workers; a worker killed with -9
 * under load loses nothing that was acknowledged and comes back; SIGHUP and SIGTERM reach every
 * worker; the primary's death takes the workers down; the admin API and the CLI see the whole
 * gateway.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SmtpTestClient, proxyV1, startBackend, type Backend } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';
import { alive, burst, CLI, configText, count, getJson, killGateways, pidsOf, start } from '../helpers/workers.js';

const backends: Backend[] = [];
afterEach(async () => {
  killGateways();
  for (const b of backends.splice(0)) await b.close();
});

describe('server.workers: 3', () => {
  it('holds per-IP, per-/24 and per-/64 limits exactly across workers; the admin API and the CLI see the whole gateway', async () => {
    const { port, admin } = await start({
      workers: 3,
      env: { NODE_CLUSTER_SCHED_POLICY: 'rr' }, // the primary hands out connections in turn: every worker gets some
      policies: `  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: 5, action: tempfail }
  - { name: per-24, on: connect, series: conn, mask: 24, windows: [0, 1], above: 12, action: tempfail }
  - { name: per-64, on: connect, series: conn6, mask: 64, windows: [0, 1], above: 7, action: tempfail }`,
    });
    const perIp = await burst(port, 20, () => '198.51.100.7');
    expect(count(perIp, 220)).toBe(5);
    expect(count(perIp, 421)).toBe(15);
    const per24 = await burst(port, 30, (i) => `192.0.2.${i + 1}`);
    expect(count(per24, 220)).toBe(12);
    const per64 = await burst(port, 15, (i) => `2001:db8:1:2::${(i + 1).toString(16)}`);
    expect(count(per64, 220)).toBe(7);

    // the whole gateway: counts from every worker, decisions summed, per-worker figures
    expect((await getJson(`${admin}/series/conn/count?key=192.0.2.0/24`)).count).toBe(30);
    expect((await getJson(`${admin}/series/conn6/count?key=2001:db8:1:2::/64`)).count).toBe(15);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toContain('auditgate_decisions_total{policy="per-ip",action="tempfail",mode="enforce"} 15');
    expect(metrics).toContain('auditgate_decisions_total{policy="per-24",action="tempfail",mode="enforce"} 18');
    expect(metrics).toContain('auditgate_decisions_total{policy="per-64",action="tempfail",mode="enforce"} 8');
    const trips = [...metrics.matchAll(/^auditgate_worker_ipc_round_trips_total\{worker="(\d)"\} (\d+)$/gm)];
    expect(trips.map((m) => m[1]).sort()).toEqual(['1', '2', '3']);
    for (const m of trips) expect(Number(m[2])).toBeGreaterThan(0); // connections were spread over all three

    const cli = spawnSync(process.execPath, [CLI, 'series', 'count', 'conn', '198.51.100.7', '--admin', admin, '--json'], { encoding: 'utf8', timeout: 20_000 });
    expect(cli.status).toBe(0);
    expect((JSON.parse(cli.stdout) as { count: number }).count).toBe(20);
    const decisions = spawnSync(process.execPath, [CLI, 'series', 'decisions', '--admin', admin, '--json'], { encoding: 'utf8', timeout: 20_000 });
    expect(decisions.status).toBe(0);
    const counted = (JSON.parse(decisions.stdout) as { counts: Array<{ policy: string; count: number }> }).counts;
    expect(Object.fromEntries(counted.map((c) => [c.policy, c.count]))).toEqual({ 'per-ip': 15, 'per-24': 18, 'per-64': 8 });
  });
});

/** One full session that delivers message `id`; true when the client got 250 for it. */
async function deliver(port: number, id: string, ip: string): Promise<boolean> {
  let c: SmtpTestClient | undefined;
  try {
    c = await SmtpTestClient.connect(port, { preface: proxyV1(ip) });
    if (c.greeting.code !== 220) return false;
    if ((await c.cmd('EHLO load.test')).code !== 250) return false;
    if ((await c.cmd('MAIL FROM:<s@load.test>')).code !== 250) return false;
    if ((await c.cmd('RCPT TO:<r@backend.test>')).code !== 250) return false;
    return (await c.data(`X-Id: ${id}\r\nSubject: load\r\n\r\nbody\r\n`)).code === 250;
  } catch {
    return false; // reset by the killed worker, or refused while it was down
  } finally {
    c?.close();
  }
}

describe('server.workers: 2', () => {
  it('kill -9 of a worker under load: nothing acknowledged is lost, the worker comes back, the other keeps serving', async () => {
    const backend = await startBackend();
    backends.push(backend);
    backend.server.on('error', () => undefined); // the killed worker's backend connections reset
    const { p, port } = await start({ workers: 2, relay: `smtp://127.0.0.1:${backend.port}`, policies: '' });
    const [victim, survivor] = pidsOf(p) as [number, number];
    const acked: string[] = [];
    let sent = 0;
    let stop = false;
    let killedAt = -1;
    const loops = Array.from({ length: 6 }, async (_, l) => {
      while (!stop) {
        const id = `m${sent++}`;
        if (await deliver(port, id, `10.0.${l}.${sent % 250}`)) acked.push(id);
      }
    });
    await waitFor(() => acked.length >= 20, 60_000);
    process.kill(victim, 'SIGKILL');
    killedAt = acked.length;
    const restarted = await p.waitFor((l) => l.msg === 'worker restarted', 30_000);
    await waitFor(() => acked.length >= killedAt + 40, 60_000);
    stop = true;
    await Promise.all(loops);

    const died = p.lines.find((l) => l.msg === 'worker died; starting it again')!;
    expect(died).toMatchObject({ pid: victim, signal: 'SIGKILL' });
    expect(restarted.pid).not.toBe(victim);
    expect(alive(restarted.pid as number)).toBe(true);
    expect(alive(survivor)).toBe(true);
    const delivered = new Set(backend.messages.map((m) => /^X-Id: (m\d+)$/m.exec(m.raw.toString('latin1'))?.[1]));
    expect(acked.filter((id) => !delivered.has(id))).toEqual([]);
    expect(acked.length).toBeGreaterThanOrEqual(killedAt + 40);
  }, 120_000);
});

describe('server.workers: 2, signals', () => {
  const limit = (above: number) => `  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: ${above}, action: tempfail }`;

  it('SIGHUP reloads every worker, a refused config is refused for all; SIGTERM drains every worker, then the primary exits', async () => {
    const backend = await startBackend();
    backends.push(backend);
    const relay = `smtp://127.0.0.1:${backend.port}`;
    const { p, port, file, dir } = await start({ workers: 2, relay, policies: limit(1) });
    const workers = pidsOf(p);
    expect(count(await burst(port, 4, () => '203.0.113.1'), 220)).toBe(1);

    writeFileSync(file, configText(dir, { workers: 2, relay, policies: limit(100) }));
    p.child.kill('SIGHUP');
    expect(await p.waitFor((l) => l.msg === 'configuration reloaded')).toMatchObject({ workers: 2 });
    // both workers run the new limit (connections go round-robin over them)
    expect(count(await burst(port, 6, () => '203.0.113.2'), 220)).toBe(6);

    writeFileSync(file, configText(dir, { workers: 2, relay, policies: limit(100) }).replace('above: 100', 'above: -1'));
    p.child.kill('SIGHUP');
    await p.waitFor((l) => String(l.msg).startsWith('reload refused'));
    writeFileSync(file, configText(dir, { workers: 3, relay, policies: limit(0) }));
    p.child.kill('SIGHUP');
    const failed = await p.waitFor((l) => l.msg === 'reload failed; the old configuration stays');
    expect(JSON.stringify(failed.err)).toMatch(/server\.workers changed, which needs a restart/);
    expect(p.lines.filter((l) => String(l.msg).startsWith('reload refused'))).toHaveLength(1); // one line, from the primary
    expect(count(await burst(port, 6, () => '203.0.113.3'), 220)).toBe(6); // neither change was applied anywhere

    // a session mid-transaction when SIGTERM arrives completes; then everyone exits
    const open = await SmtpTestClient.connect(port, { preface: proxyV1('203.0.113.9') });
    expect((await open.cmd('EHLO late.test')).code).toBe(250);
    expect((await open.cmd('MAIL FROM:<a@late.test>')).code).toBe(250);
    expect((await open.cmd('RCPT TO:<b@backend.test>')).code).toBe(250);
    p.child.kill('SIGTERM');
    await p.waitFor((l) => l.msg === 'draining sessions');
    expect((await open.data('X-Id: late\r\n\r\nbody\r\n')).code).toBe(250);
    await open.cmd('QUIT');
    expect(await p.exit).toBe(0);
    expect(p.lines.some((l) => l.msg === 'worker died; starting it again')).toBe(false);
    expect(workers.filter(alive)).toEqual([]);
    expect(backend.messages.some((m) => m.raw.toString('latin1').includes('X-Id: late'))).toBe(true);
  }, 120_000);

  it('the primary killed with -9 takes its workers down', async () => {
    const { p } = await start({ workers: 2, policies: limit(10) });
    const workers = pidsOf(p);
    expect(workers.filter(alive)).toHaveLength(2);
    p.child.kill('SIGKILL');
    await p.exit;
    await waitFor(() => workers.filter(alive).length === 0, 20_000);
  }, 90_000);
});
