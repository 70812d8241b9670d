/**
 * `auditgate serve` (dist/) with server.workers > 1, as an operator runs it: the config file in
 * a fresh directory, the primary's start-up line (worker pids, where it listens), clients
 * presenting many addresses through PROXY headers, and every process killed after the test.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { Proc } from './process.js';
import { proxyV1, SmtpTestClient } from './smtp.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist/src/cli.js');

const running: Proc[] = [];

/** Kills every gateway started here, workers included (call in afterEach). */
export function killGateways(): void {
  for (const p of running.splice(0)) {
    for (const pid of pidsOf(p)) tryKill(pid);
    p.child.kill('SIGKILL');
  }
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Worker pids the primary logged (at start and at each restart). */
export function pidsOf(p: Proc): number[] {
  return p.lines.flatMap((l) => (l.msg === 'auditgate listening' ? (l.workers as number[]) : l.msg === 'worker restarted' ? [l.pid as number] : []));
}

/** True while the process exists and is no zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export interface WorkersYaml {
  workers: number;
  relay: string;
  policies: string;
  /** More top-level sections (protected:, alerts:, journal:, milter:, …), or a function of the gateway's directory giving them. */
  extra?: string | ((dir: string) => string);
}

/** A config: the SMTP proxy on 127.0.0.1:0 (PROXY headers from loopback), the admin API, conn/conn6 counted at connect. */
export function configText(dir: string, opts: WorkersYaml): string {
  return `server:
  hostname: workers.test
  listen: ["127.0.0.1:0"]
  workers: ${opts.workers}
  proxy_protocol: [127.0.0.0/8]
relay:
  url: ${opts.relay}
  timeout: 5s
state_dir: ${join(dir, 'state')}
log_dir: ${join(dir, 'log')}
admin: { listen: "127.0.0.1:0" }
series:
  conn: { type: cidr, interval: 1h, windows: 2 }
  conn6: { type: cidr_ipv6, interval: 1h, windows: 2 }
record:
  - { on: connect, series: [conn, conn6] }
policies:
${opts.policies}
${typeof opts.extra === 'function' ? opts.extra(dir) : (opts.extra ?? '')}`;
}

export interface Running {
  p: Proc;
  /** The SMTP proxy's port (0 without one). */
  port: number;
  admin: string;
  file: string;
  dir: string;
  /** The primary's "auditgate listening" line. */
  up: Record<string, unknown>;
}

/** Runs `auditgate serve` on configText(…) (or `text(dir)`), in a new directory or `dir` (a restart), and waits for every worker to listen. */
export async function start(opts: Omit<WorkersYaml, 'relay'> & { relay?: string; env?: NodeJS.ProcessEnv; text?: (dir: string) => string; dir?: string }): Promise<Running> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'ag-workers-'));
  const file = join(dir, 'auditgate.yaml');
  writeFileSync(file, opts.text ? opts.text(dir) : configText(dir, { ...opts, relay: opts.relay ?? `dir:${join(dir, 'mail')}` }));
  const p = new Proc(spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } }));
  running.push(p);
  const up = await p.waitFor((l) => l.msg === 'auditgate listening', 60_000);
  expect(up.workers).toHaveLength(opts.workers);
  const port = (up.listen as Array<{ port: number }>)[0]?.port ?? 0;
  const a = up.admin as { host: string; port: number };
  return { p, port, admin: `http://${a.host}:${a.port}`, file, dir, up };
}

/** Opens `n` connections at once from `ip(i)`; returns the greeting codes (connections closed). */
export async function burst(port: number, n: number, ip: (i: number) => string): Promise<number[]> {
  const clients = await Promise.all(Array.from({ length: n }, (_, i) => SmtpTestClient.connect(port, { preface: proxyV1(ip(i), 40000 + i) })));
  for (const c of clients) c.close();
  return clients.map((c) => c.greeting.code);
}

export const count = (codes: number[], code: number): number => codes.filter((c) => c === code).length;

export async function getJson(url: string): Promise<Record<string, unknown>> {
  const r = await fetch(url);
  expect(r.status).toBe(200);
  return (await r.json()) as Record<string, unknown>;
}
