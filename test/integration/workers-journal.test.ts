/**
 * The decision journal with server.workers: 2: every worker's engine events reach the primary's
 * one journal writer, merged in time order, so `auditgate replay` of that journal with the same
 * config reproduces every decision — also for clients whose consecutive connections were served
 * by both workers (connections handed out in turn), and for those a policy banned (refused by the
 * ban in whichever worker, by the ban replay issues again).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReplayResult } from '../../src/replay/replay.js';
import { proxyV1, SmtpTestClient } from '../helpers/smtp.js';
import { CLI, killGateways, start } from '../helpers/workers.js';

afterEach(() => killGateways());

/** One full session (as far as the gateway lets it go); the greeting code. */
async function session(port: number, ip: string, n: number): Promise<number> {
  const c = await SmtpTestClient.connect(port, { preface: proxyV1(ip, 42000 + (n % 20000)) });
  try {
    if (c.greeting.code !== 220) return c.greeting.code;
    await c.cmd('EHLO journal.test');
    await c.cmd(`MAIL FROM:<s${n}@journal.test>`);
    await c.cmd('RCPT TO:<r@backend.test>');
    await c.data(`Subject: ${n}\r\n\r\nbody\r\n`);
    await c.cmd('QUIT');
    return 220;
  } finally {
    c.close();
  }
}

const CLIENTS = ['192.0.2.1', '192.0.2.2', '2001:db8:7::1', '2001:db8:7::2', '198.51.100.9', '2001:db8:8::5'];
const PER_CLIENT = 6;

describe('server.workers: 2, journal', () => {
  it('replaying the journal of a workers gateway with its own config changes no decision', async () => {
    const { p, port, file, dir } = await start({
      workers: 2,
      env: { NODE_CLUSTER_SCHED_POLICY: 'rr' },
      policies: `  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: 3, action: tempfail, ban: 10m }
  - { name: per-64, on: connect, series: conn6, mask: 64, windows: [0, 1], above: 5, action: tempfail }`,
      extra: (d) => `journal: { dir: ${join(d, 'journal')} }\n`,
    });
    // every client's sessions one after another (their order is defined), the clients at once
    const codes = await Promise.all(CLIENTS.map(async (ip, k) => {
      const out: number[] = [];
      for (let i = 0; i < PER_CLIENT; i++) out.push(await session(port, ip, k * 100 + i));
      return out;
    }));
    expect(codes.flat().filter((c) => c === 421).length).toBe(9 + 8); // per-ip: 3 of 6 for each IPv4 client (the 4th by the policy, which bans, the 5th and 6th by the ban); per-64: 7 of the 12 of 2001:db8:7::/64, 1 of 6 of 2001:db8:8::/64
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);

    const journal = join(dir, 'journal');
    const lines = readdirSync(journal).flatMap((f) => readFileSync(join(journal, f), 'utf8').trim().split('\n')).map((l) => JSON.parse(l) as { e: string; c: string; t: number; o?: string });
    expect(new Set(lines.filter((l) => l.e === 'open').map((l) => l.c)).size).toBe(CLIENTS.length * PER_CLIENT);
    expect(lines.filter((l) => l.e === 'connect' && l.o === 'tempfail')).toHaveLength(17);
    expect(lines.every((l, i) => i === 0 || l.t >= lines[i - 1]!.t)).toBe(true); // merged in time order

    const r = spawnSync(process.execPath, [CLI, 'replay', '--config', file, '--json', journal], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as ReplayResult;
    expect(result.sessions).toBe(CLIENTS.length * PER_CLIENT);
    expect(result.outOfOrder.lines).toBe(0);
    expect(result.decisions.compared).toBeGreaterThan(CLIENTS.length * PER_CLIENT);
    expect(result.decisions).toMatchObject({ changed: 0, otherPolicy: 0, unreachedAfter: 0, unreachedBefore: 0 });
    expect(result.policies.find((x) => x.policy === 'per-ip')!.before.enforce).toBe(9);
    expect(result.policies.find((x) => x.policy === 'per-64')!.before.enforce).toBe(8);
  }, 120_000);

  it('bans made and lifted by hand through the admin API are in the journal, and replay applies them', async () => {
    const { p, port, admin, file, dir } = await start({
      workers: 2,
      env: { NODE_CLUSTER_SCHED_POLICY: 'rr' },
      policies: `  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: 100, action: tempfail }`,
      extra: (d) => `journal: { dir: ${join(d, 'journal')} }\n`,
    });
    const bans = async (method: string, q: string, json?: unknown): Promise<number> => {
      const res = await fetch(`${admin}/bans${q}`, json === undefined ? { method } : { method, body: JSON.stringify(json), headers: { 'content-type': 'application/json' } });
      await res.text();
      return res.status;
    };
    const four = async (ip: string, from: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < 4; i++) out.push(await session(port, ip, from + i));
      return out;
    };
    expect(await four('198.51.100.30', 0)).toEqual([220, 220, 220, 220]);
    // answered once every worker applied it
    expect(await bans('POST', '', { prefix: '198.51.100.0/24', for: '1h' })).toBe(200);
    expect(await four('198.51.100.30', 10)).toEqual([421, 421, 421, 421]);
    expect(await bans('DELETE', '?prefix=198.51.100.0/24')).toBe(200);
    expect(await four('198.51.100.30', 20)).toEqual([220, 220, 220, 220]);
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);

    const journal = join(dir, 'journal');
    const lines = readdirSync(journal).flatMap((f) => readFileSync(join(journal, f), 'utf8').trim().split('\n')).map((l) => JSON.parse(l) as { e: string; f: string; a?: string });
    expect(lines.filter((l) => l.f === 'admin').map((l) => [l.e, l.a])).toEqual([
      ['ban', '198.51.100.0/24'],
      ['lift', '198.51.100.0/24'],
    ]);
    const r = spawnSync(process.execPath, [CLI, 'replay', '--config', file, '--json', journal], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as ReplayResult;
    expect(result.sessions).toBe(12);
    expect(result.decisions).toMatchObject({ changed: 0, otherPolicy: 0, unreachedAfter: 0, unreachedBefore: 0 });
    expect(result.policies.find((x) => x.policy === '(manual)')).toMatchObject({ before: { enforce: 4 }, after: { enforce: 4 } });
  }, 120_000);
});
