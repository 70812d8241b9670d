/**
 * server.workers: 2 against workers: 1, as `auditgate serve` processes. This machine has too few
 * cores for throughput to show the scaling, so the suite measures what predicts it, in the same
 * run, with the gateway suite's clients (full sessions, 1 KiB, PROXY headers from 4,096 sources,
 * 64 concurrent) and its backend responder (CHUNKING) in processes of their own:
 *
 *   CPU per session        utime + stime of every gateway process (/proc/PID/stat), summed, per
 *                          session, workers: 2 ÷ workers: 1 (the IPC's cost; target ≤ 1.15×)
 *   primary CPU / session  the primary's share of it: one primary can feed about
 *                          (CPU per session of a worker) ÷ (primary's) workers before it saturates
 *   IPC round trips        batches a worker waited on per session (the policies consult the
 *                          store at one stage, connect: baseline 1)
 *   IPC messages           batches sent plus the primary's answers, per session (baseline 2:
 *                          one round trip)
 *
 * The two gateways run side by side and are measured in alternation, ROUNDS times; figures are
 * medians. `npm run bench -- --only workers` (not part of the default run); `--only
 * workers-journal` measures the same with `journal:` on in both gateways (a worker's journal
 * lines travel to the primary, which merges and writes them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { backendProcess } from './responder.js';
import { clientProcess, FULL_POLICIES, gatewayYaml, type RunResult } from './gateway-kit.js';
import type { Figure } from './harness.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js');
const ROUNDS = 7;
const FIRST_WARMUP_MS = 10_000;
const WARMUP_MS = 1_000;
const MEASURE_MS = 3_000;
const CONCURRENCY = 64;
const TICK_US = 1e6 / 100; // USER_HZ: /proc reports CPU time in 1/100 s

interface Served {
  workers: number;
  child: ChildProcess;
  port: number;
  admin: string;
  /** Primary first. */
  pids: number[];
}

/** CPU time of a process in µs (utime + stime). */
function cpuUs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_US; // fields 14 and 15 of the whole line
}

async function serve(workers: number, backendPort: number, dir: string, journal: boolean): Promise<Served> {
  const file = path.join(dir, `workers-${workers}.yaml`);
  const yaml = (gatewayYaml(backendPort, dir, FULL_POLICIES) + (journal ? `journal: { dir: ${path.join(dir, `journal-${workers}`)} }\n` : ''))
    .replace('  idle_timeout: 30s', `  idle_timeout: 30s\n  workers: ${workers}`)
    .replace('admin: { enabled: false }', 'admin: { listen: "127.0.0.1:0" }')
    .replace('log: { level: silent }', 'log: { level: info }');
  fs.writeFileSync(file, yaml);
  const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'inherit']});
  const lines = readline.createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`auditgate serve (workers: ${workers}) exited (${code})`)));
    lines.on('line', (line) => {
      const l = JSON.parse(line) as { msg?: string; listen?: Array<{ port: number }>; admin?: { host: string; port: number }; workers?: number[] };
      if (l.msg !== 'auditgate listening') return;
      resolve({ workers, child, port: l.listen![0]!.port, admin: `http://${l.admin!.host}:${l.admin!.port}`, pids: [child.pid!, ...(l.workers ?? [])] });
    });
  });
}

/** The workers' IPC counters summed: round trips (batches answered) and batches sent. */
async function ipcCounts(s: Served): Promise<{ trips: number; batches: number }> {
  if (s.workers === 1) return { trips: 0, batches: 0 };
  const text = await (await fetch(`${s.admin}/metrics`)).text();
  const sum = (name: string): number => [...text.matchAll(new RegExp(`^auditgate_worker_ipc_${name}_total\\{worker="\\d+"\\} (\\d+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  return { trips: sum('round_trips'), batches: sum('batches') };
}

interface Sample {
  /** µs per session: every process, the primary alone. */
  total: number;
  primary: number;
  trips: number;
  /** IPC messages per session: batches sent plus the primary's answers (one per round trip). */
  messages: number;
}

async function measure(s: Served, clients: ReturnType<typeof clientProcess>): Promise<Sample> {
  await clients.run({ port: s.port, mode: 'full', proxy: true, concurrency: CONCURRENCY, warmupMs: 0, durationMs: WARMUP_MS });
  const ipc0 = await ipcCounts(s);
  const before = s.pids.map(cpuUs);
  const r: RunResult = await clients.run({ port: s.port, mode: 'full', proxy: true, concurrency: CONCURRENCY, warmupMs: 0, durationMs: MEASURE_MS });
  const after = s.pids.map(cpuUs);
  const ipc1 = await ipcCounts(s);
  const trips = ipc1.trips - ipc0.trips;
  const messages = ipc1.batches - ipc0.batches + trips;
  if (r.sessions === 0 || r.failures > 0 || r.dataNot250 > 0) throw new Error(`workers: ${s.workers}: ${r.sessions} sessions, ${r.failures} failures (${r.reasons.slice(0, 3).join('; ')})`);
  const spent = after.map((a, i) => a - before[i]!);
  const total = spent.reduce((a, b) => a + b, 0);
  console.error(`workers: ${s.workers}: ${r.sessions} sessions, ${(total / r.sessions).toFixed(0)} µs CPU each (primary ${(spent[0]! / r.sessions).toFixed(0)} µs), ${(trips / r.sessions).toFixed(2)} round trips and ${(messages / r.sessions).toFixed(2)} IPC messages each`);
  return { total: total / r.sessions, primary: spent[0]! / r.sessions, trips: trips / r.sessions, messages: messages / r.sessions };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function benchWorkers(opts: { journal?: boolean } = {}): Promise<Figure[]> {
  const journal = opts.journal === true;
  const tag = journal ? ', journal on' : '';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-bench-workers-'));
  const clients = clientProcess();
  const backend = await backendProcess(true);
  const served: Served[] = [];
  try {
    served.push(await serve(1, backend.port, dir, journal), await serve(2, backend.port, dir, journal));
    const [one, two] = served as [Served, Served];
    // JIT warm-up: each worker of `two` sees half the sessions, so both get a long first run
    for (const s of served) await clients.run({ port: s.port, mode: 'full', proxy: true, concurrency: CONCURRENCY, warmupMs: 0, durationMs: FIRST_WARMUP_MS });
    const a: Sample[] = [];
    const b: Sample[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      a.push(await measure(one, clients));
      b.push(await measure(two, clients));
    }
    const ratios = b.map((s, i) => s.total / a[i]!.total);
    const total1 = median(a.map((s) => s.total));
    const total2 = median(b.map((s) => s.total));
    const primary = median(b.map((s) => s.primary));
    const perWorker = total2 - primary;
    console.error(`workers: 2 ÷ workers: 1 CPU per session by round: ${ratios.map((r) => r.toFixed(2)).join(', ')}`);
    console.error(`one primary feeds about ${(perWorker / primary).toFixed(0)} workers before it saturates a core`);
    return [
      { name: `CPU per full session, all processes, workers: 2 (baseline workers: 1)${tag}`, value: total2, unit: 'µs', baseline: total1, ratio: median(ratios), target: '≤ 1.15×' },
      { name: `primary CPU per session, workers: 2 (baseline: all processes)${tag}`, value: primary, unit: 'µs', baseline: total2, ratio: primary / total2 },
      { name: `IPC round trips per session, workers: 2 (baseline: stages that count)${tag}`, value: median(b.map((s) => s.trips)), unit: 'trips', baseline: 1, ratio: median(b.map((s) => s.trips)) },
      { name: `IPC messages per session, both ways, workers: 2 (baseline: one round trip)${tag}`, value: median(b.map((s) => s.messages)), unit: 'msgs', baseline: 2, ratio: median(b.map((s) => s.messages)) / 2 },
    ];
  } finally {
    for (const s of served) s.child.kill('SIGTERM');
    await Promise.all(served.map((s) => new Promise((r) => (s.child.exitCode !== null ? r(null) : s.child.once('exit', r)))));
    clients.close();
    backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
