/**
 * Machinery of the gateway benchmarks, shared by bench/gateway.ts and the other suites: the
 * clients (run in a forked child: this same compiled file, started with AUDITGATE_BENCH_CLIENT=1,
 * so that on a 2-core machine the clients get one core and the server side the other), the
 * gateway config, result checks and a throwaway redis-server.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** 4,096 distinct client addresses: 198.18.0.0 – 198.18.15.255 (16 /24s of the benchmarking range). */
export const SOURCES = 4_096;
export const BODY_BYTES = 1_024;
export const CHILD_ENV = 'AUDITGATE_BENCH_CLIENT';

// ---------------------------------------------------------------------------------------------
// The clients (child side)

export interface RunSpec {
  port: number;
  mode: 'full' | 'connect';
  proxy: boolean;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /**
   * Count-based phases instead of timed ones (warmupMs and durationMs are then ignored): the
   * measured phase starts exactly `sessions` sessions and ends when the last has finished; the
   * warm-up, if `warmupSessions` > 0, likewise. The cost suite's callgrind fallback uses these.
   */
  sessions?: number;
  warmupSessions?: number;
}

export interface RunResult {
  /** Sessions that completed as expected in the measured phase. */
  sessions: number;
  failures: number;
  /** full mode: sessions whose DATA did not end in 250. */
  dataNot250: number;
  /** connect mode: greetings 220 / 421. */
  accepted: number;
  refused: number;
  elapsedMs: number;
  reasons: string[];
}

export function sourceAddress(i: number): string {
  const n = i % SOURCES;
  return `198.18.${n >>> 8}.${n & 255}`;
}

/** One phase: until `ms` have passed (sessions in flight then still finish), or exactly `sessions` sessions. */
export type Phase = { ms: number } | { sessions: number };

export function runClients(spec: RunSpec, phase: Phase, counter: { next: number }): Promise<RunResult> {
  const body = `From: a@bench.example\r\nTo: b@bench.example\r\nSubject: bench\r\n\r\n`;
  const fill = 'x'.repeat(76);
  let text = body;
  while (text.length < BODY_BYTES) text += `${fill}\r\n`;
  const message = `${text.slice(0, BODY_BYTES - 2)}\r\n.\r\n`;
  const res: RunResult = { sessions: 0, failures: 0, dataNot250: 0, accepted: 0, refused: 0, elapsedMs: 0, reasons: [] };
  const t0 = performance.now();
  const deadline = 'ms' in phase ? t0 + phase.ms : Infinity;
  const budget = 'sessions' in phase ? phase.sessions : Infinity;
  let started = 0;
  const more = (): boolean => started < budget && performance.now() < deadline;
  let active = 0;

  return new Promise<RunResult>((resolve) => {
    const fail = (reason: string): void => {
      res.failures++;
      if (res.reasons.length < 5 && !res.reasons.includes(reason)) res.reasons.push(reason);
    };

    const session = (): void => {
      started++;
      const i = counter.next++;
      // spread client ports over a few loopback source addresses
      const sock = net.connect({ port: spec.port, host: '127.0.0.1' });
      sock.setNoDelay(true);
      sock.setEncoding('latin1');
      let step = 0;
      let buf = '';
      let finished = false;
      const finish = (ok: boolean, reason?: string): void => {
        if (finished) return;
        finished = true;
        sock.destroy();
        if (ok) res.sessions++;
        else fail(reason ?? `failed at step ${step}`);
        next();
      };
      sock.on('connect', () => {
        if (spec.proxy) sock.write(`PROXY TCP4 ${sourceAddress(i)} 127.0.0.1 ${1024 + (i % 60_000)} 2525\r\n`);
      });
      sock.on('error', (e: NodeJS.ErrnoException) => finish(false, `socket error ${e.code ?? e.message} at step ${step}`));
      sock.on('close', () => finish(false, `closed at step ${step}`));
      const expect = (code: number, want: number, line: string): boolean => {
        if (code === want) return true;
        finish(false, `step ${step}: expected ${want}, got ${line.slice(0, 80)}`);
        return false;
      };
      const onReply = (code: number, line: string): void => {
        if (spec.mode === 'connect') {
          if (code === 220) res.accepted++;
          else if (code === 421) res.refused++;
          else return finish(false, `greeting: ${line.slice(0, 80)}`);
          if (!spec.proxy && code !== 220) return finish(false, `greeting: ${line.slice(0, 80)}`);
          return finish(true);
        }
        switch (step) {
          case 0:
            if (expect(code, 220, line)) sock.write('EHLO client.bench.example\r\n');
            break;
          case 1:
            if (expect(code, 250, line)) sock.write('MAIL FROM:<a@bench.example>\r\n');
            break;
          case 2:
            if (expect(code, 250, line)) sock.write('RCPT TO:<b@bench.example>\r\n');
            break;
          case 3:
            if (expect(code, 250, line)) sock.write('DATA\r\n');
            break;
          case 4:
            if (expect(code, 354, line)) sock.write(message);
            break;
          case 5:
            if (code !== 250) res.dataNot250++;
            if (expect(code, 250, line)) sock.write('QUIT\r\n');
            break;
          case 6:
            if (expect(code, 221, line)) finish(true);
            return;
        }
        step++;
      };
      sock.on('data', (d: string) => {
        buf += d;
        for (;;) {
          const nl = buf.indexOf('\r\n');
          if (nl < 0) return;
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          if (line.length > 3 && line.charCodeAt(3) === 45 /* '-' */) continue;
          onReply(Number(line.slice(0, 3)), line);
          if (finished) return;
        }
      });
    };

    const next = (): void => {
      if (more()) {
        session();
        return;
      }
      active--;
      if (active === 0) {
        res.elapsedMs = performance.now() - t0;
        resolve(res);
      }
    };

    // (a timed phase starts its first wave even when ms is 0, as it always has)
    for (let c = 0; c < spec.concurrency && started < budget; c++) {
      active++;
      session();
    }
    if (active === 0) resolve(res);
  });
}

export async function childMain(): Promise<void> {
  const counter = { next: 0 };
  process.on('message', (msg: { id: number; spec: RunSpec }) => {
    void (async () => {
      const { spec } = msg;
      const counted = spec.sessions !== undefined;
      await runClients(spec, counted ? { sessions: spec.warmupSessions ?? 0 } : { ms: spec.warmupMs }, counter);
      const r = await runClients(spec, counted ? { sessions: spec.sessions! } : { ms: spec.durationMs }, counter);
      process.send!({ id: msg.id, result: r });
    })();
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.env[CHILD_ENV] === '1' && process.send) void childMain();

// ---------------------------------------------------------------------------------------------
// The server side (parent)

/** Runs one client phase and logs the server-side (this process) CPU use during it. */
export async function measured(what: string, clients: { run(spec: RunSpec): Promise<RunResult> }, spec: RunSpec): Promise<RunResult> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await clients.run(spec);
  const c = process.cpuUsage(c0);
  const wall = (performance.now() - t0) * 1000;
  console.error(`${what}: ${rate(r).toFixed(0)} sessions/s; server-side process CPU ${((100 * (c.user + c.system)) / wall).toFixed(0)}% of one core (warm-up included)`);
  return r;
}

export function clientProcess(): { run(spec: RunSpec): Promise<RunResult>; close(): void } {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, [CHILD_ENV]: '1' }, execArgv: [], stdio: 'inherit' });
  let id = 0;
  const waiting = new Map<number, { resolve: (r: RunResult) => void; reject: (e: Error) => void }>();
  child.on('message', (m: { id: number; result: RunResult }) => {
    waiting.get(m.id)?.resolve(m.result);
    waiting.delete(m.id);
  });
  child.on('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`bench client process exited (${code})`));
    waiting.clear();
  });
  return {
    run: (spec) =>
      new Promise<RunResult>((resolve, reject) => {
        const n = ++id;
        waiting.set(n, { resolve, reject });
        child.send({ id: n, spec });
      }),
    close: () => {
      if (child.connected) child.disconnect();
    },
  };
}

/**
 * `relay`: the backend's port, or the relay's url value and any more relay lines (indented two spaces).
 * `intervalS`: the connections series' interval (the cost suite's callgrind rows lengthen it so that no rotation falls in a counted window).
 */
export function gatewayYaml(relay: number | { url: string; extra?: string }, dir: string, policies: string, replicate?: { redisPort: number }, intervalS = 60): string {
  const url = typeof relay === 'number' ? `smtp://127.0.0.1:${relay}` : relay.url;
  const extra = typeof relay === 'number' ? '' : (relay.extra ?? '');
  const store = replicate ? `store: { redis: "redis://127.0.0.1:${replicate.redisPort}", on_error: local }\n` : '';
  const rep = replicate ? 'cluster' : 'none';
  return `server:
  hostname: gw.bench
  listen: ["127.0.0.1:0"]
  proxy_protocol: [127.0.0.0/8]
  max_clients: 10000
  idle_timeout: 30s
relay:
  url: ${url}
  timeout: 10s
  pool_size: 64
${extra}state_dir: ${JSON.stringify(path.join(dir, 'state'))}
log_dir: ${JSON.stringify(path.join(dir, 'log'))}
admin: { enabled: false }
log: { level: silent }
${store}series:
  connections: { type: cidr, interval: ${intervalS}, windows: 4, replicate: ${rep} }
record:
  - { on: connect, series: connections }
policies:
${policies}
`;
}

export const rate = (r: RunResult): number => r.sessions / (r.elapsedMs / 1000);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Full-session policies: thresholds far above the load, so nothing is refused. */
export const FULL_POLICIES = `  - { name: per-ip, on: connect, series: connections, mask: 32, windows: [0, 3], above: 1000000, action: tempfail }
  - { name: per-24, on: connect, series: connections, mask: 24, windows: [0, 3], above: 10000000, action: tempfail }`;

// ---------------------------------------------------------------------------------------------
// A throwaway redis-server for the replicate: cluster figure

export interface RedisServer {
  port: number;
  stop(): Promise<void>;
}

export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** One raw PING; true on +PONG within `ms`. */
export function ping(port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let buf = '';
    const done = (ok: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), ms);
    s.setEncoding('latin1');
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    s.on('error', () => done(false));
  });
}

/** Starts redis-server on a free loopback port; undefined (with a line on stderr) when it is not on PATH. */
export async function startRedisServer(): Promise<RedisServer | undefined> {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    console.error(`redis-server not found on PATH (${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}): skipping the replicate: cluster vs memory figure`);
    return undefined;
  }
  const port = await freeLoopbackPort();
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let exited: number | string | null | undefined;
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const exitP = new Promise<void>((r) =>
    child.once('exit', (code, sig) => {
      exited = code ?? sig;
      r();
    }),
  );
  child.on('error', (e) => (stderr += `\n${e.message}`));
  const stop = async (): Promise<void> => {
    if (exited !== undefined) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exitP;
    clearTimeout(t);
  };
  // Bounded wait for PING: 100 tries, ~10 s at most.
  for (let i = 0; i < 100; i++) {
    if (exited !== undefined) break;
    if (await ping(port, 200)) {
      console.error(`redis-server ${probe.stdout.trim().split(/\s+/)[2] ?? ''} up on 127.0.0.1:${port} (pid ${child.pid})`);
      return { port, stop };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`redis-server on 127.0.0.1:${port} did not answer PING (exit ${String(exited)}): ${stderr.trim()}`);
}


export function checkFull(what: string, r: RunResult): void {
  const total = r.sessions + r.failures;
  console.error(
    `${what} full sessions: ${r.sessions} ok, ${r.failures} failed (${r.dataNot250} without 250 after DATA) in ${(r.elapsedMs / 1000).toFixed(2)} s` +
      (r.reasons.length ? `; first failures: ${r.reasons.join(' | ')}` : ''),
  );
  if (total === 0 || r.failures > total * 0.01) throw new Error(`${what}: ${r.failures} of ${total} sessions failed (> 1%): ${r.reasons.join(' | ')}`);
}

export function checkConnect(what: string, r: RunResult): void {
  const total = r.sessions + r.failures;
  if (r.failures > 0) console.error(`${what} connect-only: ${r.failures} of ${total} failed; first failures: ${r.reasons.join(' | ')}`);
  if (total === 0 || r.failures > total * 0.01) throw new Error(`${what}: ${r.failures} of ${total} connect-only sessions failed (> 1%): ${r.reasons.join(' | ')}`);
}
