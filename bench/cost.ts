/**
 * Where a full session's CPU goes, in instructions per session counted by `perf stat` on the
 * server process alone. Unlike sessions/s, instruction counts barely move when the shared
 * machine is busy, so they tell what a change saves and what the ceiling is.
 *
 * Same clients and sessions as the gateway suite (EHLO, MAIL, RCPT, DATA 1 KiB, QUIT; 64
 * concurrent; PROXY headers from 4,096 sources where the server reads them). Rows:
 *   responder            the do-nothing SMTP responder (the gateway suite's baseline)
 *   smtp-server alone    smtp-server with PROXY headers and nothing else: no hooks, no relay
 *   gateway, stub relay  auditgate with its policies, the relay replaced by a stub that answers
 *                        250 at once (the front's own cost, without backend round trips)
 *   gateway → backend    auditgate relaying to a backend responder in another process
 *
 * ratio = instructions ÷ the responder's (a cost: lower is better); the responder's rate over
 * a row's rate cannot be better than about that ratio on one core.
 *
 * `npm run bench -- --only cost`; needs `perf` (Debian: linux-perf). Not part of the default run.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
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
import { backendProcess, clientProcess, FULL_POLICIES, gatewayYaml, startResponder, type RunResult } from './gateway.js';
import type { Figure } from './harness.js';

const SERVER_ENV = 'AUDITGATE_COST_SERVER';
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
    const gw = await startGateway({ config: parseConfigText(gatewayYaml(backendPort, dir, FULL_POLICIES), 'bench-cost.yaml') });
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

function serverProcess(scenario: Scenario, env: Record<string, string> = {}): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, ...env, [SERVER_ENV]: scenario }, execArgv: [], stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port }));
    child.once('exit', (code) => reject(new Error(`bench server (${scenario}) exited (${code})`)));
  });
}

/** perf stat on one process until stop(); resolves with the instruction count. */
function perfStat(pid: number): { stop(): Promise<number> } {
  const perf = spawn('perf', ['stat', '-x,', '-e', 'instructions', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  perf.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((r) => perf.once('exit', () => r()));
  return {
    stop: async () => {
      perf.kill('SIGINT');
      await exited;
      const line = err.split('\n').find((l) => l.includes('instructions'));
      const n = line ? Number(line.split(',')[0]) : NaN;
      if (!Number.isFinite(n) || n <= 0) throw new Error(`perf stat gave no instruction count: ${err.trim().slice(0, 300)}`);
      return n;
    },
  };
}

function perfAvailable(): boolean {
  const r = spawnSync('perf', ['stat', '-x,', '-e', 'instructions', 'true'], { encoding: 'utf8' });
  return !r.error && r.status === 0 && /instructions/.test(r.stderr) && !/not supported|not counted/.test(r.stderr);
}

export async function benchCost(): Promise<Figure[]> {
  if (!perfAvailable()) {
    console.error('perf (with an instructions counter) is not available: skipping the cost suite (Debian: apt-get install linux-perf)');
    return [];
  }
  const clients = clientProcess();
  const chunking = await backendProcess(true);
  const dataOnly = await backendProcess(false);
  const rows: Array<{ name: string; scenario: Scenario; env?: Record<string, string> }> = [
    { name: 'responder', scenario: 'responder' },
    { name: 'smtp-server alone (PROXY, no hooks, no relay)', scenario: 'smtp-server' },
    { name: 'gateway, stub relay (policies, no backend)', scenario: 'gateway-stub' },
    { name: 'gateway → backend offering CHUNKING (BDAT)', scenario: 'gateway-backend', env: { AUDITGATE_COST_BACKEND: String(chunking.port) } },
    { name: 'gateway → backend with DATA only', scenario: 'gateway-backend', env: { AUDITGATE_COST_BACKEND: String(dataOnly.port) } },
  ];
  const figures: Figure[] = [];
  let base = NaN;
  try {
    for (const row of rows) {
      const { child, port } = await serverProcess(row.scenario, row.env);
      try {
        let perf: { stop(): Promise<number> } | undefined;
        const timer = setTimeout(() => (perf = perfStat(child.pid!)), WARMUP_MS);
        const r: RunResult = await clients.run({ port, mode: 'full', proxy: row.scenario !== 'responder', concurrency: 64, warmupMs: WARMUP_MS, durationMs: MEASURE_MS });
        clearTimeout(timer);
        if (!perf) throw new Error('the measured phase ended before perf started');
        const instructions = await perf.stop();
        if (r.sessions === 0 || r.failures > r.sessions * 0.01) throw new Error(`${row.name}: ${r.failures} failures, ${r.sessions} sessions: ${r.reasons.join(' | ')}`);
        const per = instructions / r.sessions;
        if (row.scenario === 'responder') base = per;
        console.error(`${row.name}: ${r.sessions} sessions, ${(per / 1000).toFixed(0)}k instructions per session`);
        figures.push({ name: `instructions per full session: ${row.name}`, value: per, unit: 'instr', baseline: base, ratio: per / base });
      } finally {
        if (child.connected) child.disconnect();
      }
    }
  } finally {
    clients.close();
    chunking.close();
    dataOnly.close();
  }
  return figures;
}
