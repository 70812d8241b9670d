/**
 * Where a full session's CPU goes, in instructions per session counted in the server process
 * alone. Unlike sessions/s, instruction counts barely move when the shared machine is busy, so
 * they tell what a change saves and what the ceiling is.
 *
 * Same clients and sessions as the gateway suite (EHLO, MAIL, RCPT, DATA 1 KiB, QUIT; PROXY
 * headers from 4,096 sources where the server reads them). Rows:
 *   responder            the do-nothing SMTP responder (the gateway suite's baseline)
 *   smtp-server alone    smtp-server with PROXY headers and nothing else: no hooks, no relay
 *   gateway, stub relay  auditgate with its policies, the relay replaced by a stub that answers
 *                        250 at once (the front's own cost, without backend round trips)
 *   gateway → backend    auditgate relaying to a backend responder in another process
 *
 * ratio = instructions ÷ the responder's (a cost: lower is better); the responder's rate over
 * a row's rate cannot be better than about that ratio on one core.
 *
 * Two counters, never mixed (the figure's unit, and for callgrind its name, say which):
 *   perf       `perf stat -e instructions -p PID` (hardware counter, user + kernel as perf is
 *              allowed): 64 concurrent clients, 1 s warm-up, 4 s measured. Used where perf has
 *              an instructions counter.
 *   callgrind  the fallback where it has not (VMs without PMU passthrough): the server runs under
 *              `valgrind --tool=callgrind`, which counts user-space instructions (Ir) in software;
 *              V8's optimizing compiler and GC pauses are left out, see measureCallgrind below.
 *              Some 50× slower, so a fixed number of sessions, not a duration.
 *   AUDITGATE_COST_COUNTER=perf|callgrind forces one; AUDITGATE_COST_KEEP=1 keeps the callgrind
 *   dumps (their directory is printed) for callgrind_annotate.
 *
 * `npm run bench -- --only cost`; needs `perf` (Debian: linux-perf) or `valgrind`. Not part of the
 * default run.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { parseConfigText } from '../src/config/load.js';
import { startGateway } from '../src/gateway.js';
import { readProxyHeader } from '../src/smtp/proxy-protocol.js';
import type { SmtpReply } from '../src/smtp/relay/reply.js';
import { UNLIMITED } from '../src/smtp/relay/capabilities.js';
import type { Relay, RelayTransaction } from '../src/smtp/relay/types.js';
import { backendProcess, startResponder } from './responder.js';
import { clientProcess, FULL_POLICIES, gatewayYaml, type RunResult } from './gateway-kit.js';
import { CG_ATTEMPTS, CG_CONCURRENCY, CG_MAX_COMPILE, CG_MAX_EXTRA_WARMUP, CG_MAX_SWEEPING, CG_NODE_FLAGS, CG_QUIET_BATCH, CG_QUIET_COMPILES, CG_SERIES_INTERVAL_S, CG_SESSIONS, CG_SETTLE_MS, CG_VALGRIND_FLAGS, CG_WARMUP_SESSIONS, callgrindControl, callgrindVersion, countCompiles, readCallgrindDump, readDumpFile, sleep } from './callgrind.js';
import type { Figure } from './harness.js';
import { perfAvailable, perfStat } from './perf-counter.js';

const SERVER_ENV = 'AUDITGATE_COST_SERVER';
/** The gateway rows' series interval in seconds (bench default 60), set for the callgrind server. */
const INTERVAL_ENV = 'AUDITGATE_COST_INTERVAL';
const WARMUP_MS = 1_000;
const MEASURE_MS = 4_000;

type Scenario = 'responder' | 'smtp-server' | 'gateway-stub' | 'gateway-backend';

// ---------------------------------------------------------------------------------------------
// server side (a child process per row, so perf counts that server and nothing else)

/** smtp-server as the gateway drives it (its own connection class, no greeting delay), with no hooks. */
async function startBareSmtpServer(): Promise<number> {
  const server = new SMTPServer({
    name: 'bare.bench',
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideSTARTTLS: true,
    disableReverseLookup: true,
    logger: false,
    onData(stream, _session, cb) {
      stream.on('data', () => undefined);
      stream.on('end', () => cb());
    },
  });
  const internals = server as unknown as { connections: Set<unknown>; _onClientConnect(data: unknown): void };
  let n = 0;
  const listener = net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.resume();
    readProxyHeader(socket, 5000).then(
      (info) => {
        const conn = new SMTPConnection(server, socket, { id: String(n++), remoteAddress: info.sourceAddress, remotePort: info.sourcePort });
        internals.connections.add(conn);
        conn.on('error', () => undefined);
        conn.on('connect', (d: unknown) => internals._onClientConnect(d));
        conn._setListeners(() => conn.connectionReady());
      },
      () => socket.destroy(),
    );
  });
  await new Promise<void>((r) => listener.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  return (listener.address() as net.AddressInfo).port;
}

/** A relay that answers 250 to everything at once and reads the message: the front's cost without a backend. */
function stubRelay(): Relay {
  const ok: SmtpReply = { code: 250, enhanced: '2.0.0', message: 'Ok', lines: ['Ok'] };
  const tx: RelayTransaction = {
    dataBytes: 0,
    mailFrom: () => Promise.resolve(ok),
    rcptTo: () => Promise.resolve(ok),
    data: (message) =>
      new Promise<SmtpReply>((resolve) => {
        message.on('data', () => undefined);
        message.on('end', () => resolve(ok));
      }),
    release: () => Promise.resolve(),
    abort: () => undefined,
  };
  return {
    begin: () => Promise.resolve(tx),
    authenticate: () => Promise.resolve({ reply: ok }),
    start: () => undefined,
    capabilities: () => UNLIMITED,
    close: () => Promise.resolve(),
    stats: () => ({ kind: 'smtp', backends: [], idle: 0, active: 0, opened: 0, reused: 0, transactions: 0, messages: 0, bytes: 0, failures: 0 }),
  };
}

async function serverMain(scenario: Scenario): Promise<void> {
  let port: number;
  if (scenario === 'responder') port = (await startResponder()).port;
  else if (scenario === 'smtp-server') port = await startBareSmtpServer();
  else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-cost-'));
    const backendPort = Number(process.env.AUDITGATE_COST_BACKEND ?? 9);
    const intervalS = Number(process.env[INTERVAL_ENV] ?? 60);
    const journal = process.env.AUDITGATE_COST_JOURNAL ? `journal: { dir: ${JSON.stringify(path.join(dir, 'journal'))} }\n` : '';
    const gw = await startGateway({ config: parseConfigText(gatewayYaml(backendPort, dir, FULL_POLICIES, undefined, intervalS) + journal, 'bench-cost.yaml') });
    if (scenario === 'gateway-stub') gw.relay = stubRelay();
    port = gw.smtpAddresses()[0]!.port;
    process.on('disconnect', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  process.send!({ port });
  process.on('disconnect', () => process.exit(0));
}

if (process.env[SERVER_ENV] && process.send) void serverMain(process.env[SERVER_ENV] as Scenario);

// ---------------------------------------------------------------------------------------------
// parent

type Counter = 'perf' | 'callgrind';
/** Set to "perf" or "callgrind" to force one counter; by default perf where it counts instructions, else callgrind. */
const COUNTER_ENV = 'AUDITGATE_COST_COUNTER';
/** Set (to anything) to keep the callgrind dumps, for callgrind_annotate: where do a session's instructions go? */
const KEEP_ENV = 'AUDITGATE_COST_KEEP';
/** Comma-separated row keys (responder, smtp-server, gateway-stub, gateway-bdat, gateway-data, gateway-journal) to run only those, in that order; repeats run again. */
const ROWS_ENV = 'AUDITGATE_COST_ROWS';

interface ServerChild {
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
  /** Optimizing compiles the server has completed so far (counted from --trace-opt under callgrind; 0 when forked). */
  compiles: () => number;
}

/** One row's server: forked, or spawned under callgrind (instrumentation off) with an IPC channel on fd 3. */
function serverProcess(scenario: Scenario, env: Record<string, string> = {}, callgrind?: { out: string; log: string }): Promise<ServerChild> {
  const script = fileURLToPath(import.meta.url);
  const childEnv = { ...process.env, ...env, [SERVER_ENV]: scenario, ...(callgrind ? { [INTERVAL_ENV]: String(CG_SERIES_INTERVAL_S) } : {}) };
  const child = callgrind
    ? spawn('valgrind', [...CG_VALGRIND_FLAGS, `--callgrind-out-file=${callgrind.out}`, `--log-file=${callgrind.log}`, process.execPath, ...CG_NODE_FLAGS, script], {
        env: childEnv,
        stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      })
    : fork(script, [], { env: childEnv, execArgv: [], stdio: 'inherit' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const compiles = child.stdout ? countCompiles(child.stdout, process.stdout) : () => 0;
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port, exited, compiles }));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench server (${scenario}) exited (${code})${callgrind ? `; valgrind log: ${callgrind.log}` : ''}`)));
  });
}

function pickCounter(): { counter: Counter; label: string } | undefined {
  const forced = process.env[COUNTER_ENV] || undefined;
  if (forced !== undefined && forced !== 'perf' && forced !== 'callgrind') throw new Error(`${COUNTER_ENV} must be perf or callgrind, not "${forced}"`);
  if (forced !== 'callgrind' && perfAvailable()) return { counter: 'perf', label: 'perf stat -e instructions (hardware counter)' };
  if (forced === 'perf') {
    console.error(`${COUNTER_ENV}=perf, but perf has no instructions counter here: skipping the cost suite`);
    return undefined;
  }
  const vg = callgrindVersion();
  if (vg) return { counter: 'callgrind', label: `callgrind Ir (${vg}, counted in software; ${forced ? `forced by ${COUNTER_ENV}` : 'perf has no instructions counter here'})` };
  console.error('neither perf with an instructions counter nor valgrind (callgrind) is available: skipping the cost suite (Debian: apt-get install linux-perf, or valgrind)');
  return undefined;
}

function checkRun(name: string, r: RunResult, started?: number): void {
  const total = r.sessions + r.failures;
  if (r.sessions === 0 || r.failures > total * 0.01 || (started !== undefined && total !== started))
    throw new Error(`${name}: ${r.failures} failures, ${r.sessions} sessions${started !== undefined ? ` (${started} started)` : ''}: ${r.reasons.join(' | ')}`);
}

type Clients = ReturnType<typeof clientProcess>;

/** One row with perf: 1 s warm-up, then perf counts the server process for 4 s of 64 concurrent clients. */
async function measurePerf(scenario: Scenario, env: Record<string, string> | undefined, clients: Clients, name: string): Promise<{ instructions: number; sessions: number }> {
  const { child, port } = await serverProcess(scenario, env);
  try {
    let perf: { stop(): Promise<number> } | undefined;
    const timer = setTimeout(() => (perf = perfStat(child.pid!)), WARMUP_MS);
    const r = await clients.run({ port, mode: 'full', proxy: scenario !== 'responder', concurrency: 64, warmupMs: WARMUP_MS, durationMs: MEASURE_MS });
    clearTimeout(timer);
    if (!perf) throw new Error('the measured phase ended before perf started');
    const instructions = await perf.stop();
    checkRun(name, r);
    return { instructions, sessions: r.sessions };
  } finally {
    if (child.connected) child.disconnect();
  }
}

/**
 * One row with callgrind. The server starts under valgrind with instrumentation off;
 * CG_WARMUP_SESSIONS sessions warm it up uncounted, then batches of CG_QUIET_BATCH until V8 stops
 * optimizing; after a pause `callgrind_control -i on` starts counting, exactly CG_SESSIONS
 * sessions run (CG_CONCURRENCY at a time), and after another pause `callgrind_control --dump`
 * writes the window's counts.
 *
 * Instructions per session = (window Ir − optimizing compiler − GC pauses) ÷ sessions: the work
 * of the JS, V8's runtime and inline caches, node's C++, libuv and libc, without the lumps V8 adds
 * now and then. A TurboFan compile or a major GC is millions to hundreds of millions of Ir, a long
 * native run amortizes them to next to nothing, and a window of 800 sessions would swing by
 * 10–30% with them; minor GCs cost what happens to be alive at the time, ±5% run to run. The
 * compile and GC Ir per session are printed on each row's line.
 *
 * A spoilt window is measured again (counters zeroed), up to CG_ATTEMPTS in all: one with a major
 * GC or the lazy sweeping after one, one where optimizing compiles took more than CG_MAX_COMPILE
 * of the Ir (code still on its way to optimized: the window doubles as more warm-up), and for the
 * gateway rows one that crossed a series rotation (their interval is CG_SERIES_INTERVAL_S here,
 * so only one that crosses the hour).
 */
async function measureCallgrind(
  scenario: Scenario,
  env: Record<string, string> | undefined,
  clients: Clients,
  name: string,
  files: { out: string; log: string },
): Promise<{ instructions: number; sessions: number; note: string }> {
  const t0 = performance.now();
  const { child, port, exited, compiles } = await serverProcess(scenario, env, files);
  try {
    const pid = child.pid!;
    const rotates = scenario === 'gateway-stub' || scenario === 'gateway-backend';
    const interval = (ms: number): number => Math.floor(ms / (CG_SERIES_INTERVAL_S * 1000));
    const spec = { port, mode: 'full', proxy: scenario !== 'responder', concurrency: CG_CONCURRENCY, warmupMs: 0, durationMs: 0 } as const;
    const warm = async (n: number): Promise<void> => checkRun(`${name} (warm-up)`, await clients.run({ ...spec, sessions: n }), n);
    const t1 = performance.now();
    await warm(CG_WARMUP_SESSIONS);
    // then until a batch runs (nearly) without optimizing compiles: V8 has tiered up what this row runs
    let extra = 0;
    for (let quiet = false; !quiet && extra < CG_MAX_EXTRA_WARMUP; extra += CG_QUIET_BATCH) {
      const before = compiles();
      await warm(CG_QUIET_BATCH);
      await sleep(CG_SETTLE_MS);
      quiet = compiles() - before <= CG_QUIET_COMPILES;
    }
    const t2 = performance.now();
    let counting = false;
    for (let attempt = 1; ; attempt++) {
      await sleep(CG_SETTLE_MS);
      const t3 = performance.now();
      const w0 = Date.now();
      // attempt 1 turns counting on; later ones zero what the earlier windows (and any warm-up between) counted
      await callgrindControl(pid, counting ? ['--zero'] : ['--instr=on']);
      counting = true;
      const r = await clients.run({ ...spec, sessions: CG_SESSIONS });
      await sleep(CG_SETTLE_MS);
      await callgrindControl(pid, ['--dump']);
      const w1 = Date.now();
      const text = await readDumpFile(`${files.out}.${attempt}`, 30_000);
      checkRun(name, r, CG_SESSIONS);
      const c = readCallgrindDump(text);
      if (!c.symbols) console.error(`${name}: WARNING the callgrind dump names no V8 functions (stripped node?): compiles and GCs cannot be told apart, the figure will wander`);
      const spoilt = [
        c.majorGcs > 0 ? `${c.majorGcs} major GC(s)` : '',
        c.sweeping > c.total * CG_MAX_SWEEPING ? 'lazy sweeping after a major GC' : '',
        c.compile > c.total * CG_MAX_COMPILE ? `optimizing compiles (${((100 * c.compile) / c.total).toFixed(0)}% of the Ir)` : '',
        rotates && interval(w0) !== interval(w1) ? 'a series rotation' : '',
      ]
        .filter(Boolean)
        .join(' and ');
      if (spoilt && attempt < CG_ATTEMPTS) {
        console.error(`${name}: ${spoilt} in the window (${(c.total / r.sessions / 1000).toFixed(0)}k Ir per session with it): measuring again`);
        continue;
      }
      const per = (x: number): string => `${(x / r.sessions / 1000).toFixed(1)}k`;
      const secs = (ms: number): string => `${(ms / 1000).toFixed(0)} s`;
      const note =
        `total ${per(c.total)} − optimizing compiler ${per(c.compile)} − GC ${per(c.gc)} Ir per session` +
        `${spoilt ? `; WARNING ${spoilt} in the window after ${attempt} attempts` : ''}` +
        `; start ${secs(t1 - t0)}, warm-up ${secs(t2 - t1)}${extra ? ` (${CG_WARMUP_SESSIONS} + ${extra} sessions, ${compiles()} optimizing compiles so far)` : ''}, window ${secs(performance.now() - t3)}` +
        `${attempt > 1 ? ` (attempt ${attempt})` : ''}`;
      return { instructions: c.total - c.compile - c.gc, sessions: r.sessions, note };
    }
  } finally {
    if (child.connected) child.disconnect();
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(kill);
  }
}

interface Row {
  key: string;
  name: string;
  scenario: Scenario;
  env?: Record<string, string>;
}

/** The rows named in AUDITGATE_COST_ROWS (comma-separated keys, in that order, repeats allowed), else all. */
function pickRows(all: Row[]): Row[] {
  const wanted = process.env[ROWS_ENV]?.split(',').map((k) => k.trim()).filter(Boolean);
  if (!wanted?.length) return all;
  return wanted.map((k) => {
    const row = all.find((r) => r.key === k);
    if (!row) throw new Error(`${ROWS_ENV}: unknown row "${k}"; known: ${all.map((r) => r.key).join(', ')}`);
    return row;
  });
}

export async function benchCost(): Promise<Figure[]> {
  const picked = pickCounter();
  if (!picked) return [];
  const { counter } = picked;
  console.error(`cost: counting with ${picked.label}`);
  if (counter === 'callgrind')
    console.error(
      `cost: callgrind: per row ${CG_WARMUP_SESSIONS} warm-up sessions uncounted, then ${CG_SESSIONS} counted, ${CG_CONCURRENCY} concurrent; ` +
        `node ${CG_NODE_FLAGS.join(' ')}; figure = (Ir − optimizing compiler − GC pauses) per session, in Ir (callgrind): not comparable with perf's`,
    );
  const clients = clientProcess();
  const chunking = await backendProcess(true);
  const dataOnly = await backendProcess(false);
  const rows = pickRows([
    { key: 'responder', name: 'responder', scenario: 'responder' },
    { key: 'smtp-server', name: 'smtp-server alone (PROXY, no hooks, no relay)', scenario: 'smtp-server' },
    { key: 'gateway-stub', name: 'gateway, stub relay (policies, no backend)', scenario: 'gateway-stub' },
    { key: 'gateway-bdat', name: 'gateway → backend offering CHUNKING (BDAT)', scenario: 'gateway-backend', env: { AUDITGATE_COST_BACKEND: String(chunking.port) } },
    { key: 'gateway-data', name: 'gateway → backend with DATA only', scenario: 'gateway-backend', env: { AUDITGATE_COST_BACKEND: String(dataOnly.port) } },
    { key: 'gateway-journal', name: 'gateway → backend with DATA only, journal on', scenario: 'gateway-backend', env: { AUDITGATE_COST_BACKEND: String(dataOnly.port), AUDITGATE_COST_JOURNAL: '1' } },
  ]);
  const cgDir = counter === 'callgrind' ? fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-cost-callgrind-')) : undefined;
  let failed = true;
  const figures: Figure[] = [];
  let base = NaN;
  const t0 = performance.now();
  try {
    for (const [i, row] of rows.entries()) {
      const t = performance.now();
      const m = cgDir
        ? await measureCallgrind(row.scenario, row.env, clients, row.name, { out: path.join(cgDir, `row${i}.callgrind.out`), log: path.join(cgDir, `row${i}.valgrind.log`) })
        : { ...(await measurePerf(row.scenario, row.env, clients, row.name)), note: '' };
      const per = m.instructions / m.sessions;
      if (row.scenario === 'responder') base = per;
      const unit = counter === 'perf' ? 'instructions' : 'Ir';
      console.error(
        `${row.name}: ${m.sessions} sessions, ${(per / 1000).toFixed(1)}k ${unit} per session (${counter}; row ${((performance.now() - t) / 1000).toFixed(0)} s)${m.note ? `: ${m.note}` : ''}`,
      );
      figures.push(
        counter === 'perf'
          ? { name: `instructions per full session: ${row.name}`, value: per, unit: 'instr (perf)', baseline: base, ratio: per / base }
          : { name: `instructions per full session (callgrind): ${row.name}`, value: per, unit: 'Ir (callgrind)', baseline: base, ratio: per / base },
      );
    }
    failed = false;
    console.error(`cost: ${rows.length} rows in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    clients.close();
    chunking.close();
    dataOnly.close();
    if (cgDir && (failed || process.env[KEEP_ENV])) console.error(`cost: callgrind dumps and valgrind logs kept in ${cgDir}`);
    else if (cgDir) fs.rmSync(cgDir, { recursive: true, force: true });
  }
  return figures;
}
