/**
 * Real redis-server processes for integration tests: a standalone server on a free loopback
 * port (no persistence), and a 3-master Redis Cluster, each node in its own temp dir. Every
 * wait is bounded; every process started here is killed on teardown (and on process exit).
 *
 * redis-server missing: with CI=true the suites must fail (each Redis test file calls
 * requireRedis(), which adds a failing test); locally they skip with a visible message.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { seriesDefinitions } from '../../src/config/catalogue.js';
import { ManualClock } from '../../src/series/clock.js';
import { SeriesRegistry } from '../../src/series/registry.js';
import { createStore, type RedisTuning, type RoutingStore } from '../../src/store/create.js';
import type { ManagedStore } from '../../src/store/types.js';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

function hasBinary(name: string): boolean {
  const r = spawnSync(name, ['--version'], { stdio: 'ignore', timeout: 5000 });
  return r.status === 0;
}

export const HAVE_REDIS = hasBinary('redis-server') && hasBinary('redis-cli');

/** Call at the top of a test file: warns locally when redis-server is missing. */
export function redisMissingMessage(): string | undefined {
  if (HAVE_REDIS) return undefined;
  const msg = 'redis-server / redis-cli not found on PATH: Redis integration tests ' + (IN_CI ? 'FAIL (CI=true)' : 'are SKIPPED (install redis-server)');
  console.warn(`\n*** ${msg} ***\n`);
  return msg;
}

/** Call at the top of a Redis test file: warns when redis-server is missing, and with CI=true adds a test that fails. */
export function requireRedis(): void {
  const missing = redisMissingMessage();
  if (missing && IN_CI) {
    it('redis-server and redis-cli are installed', () => {
      throw new Error(missing);
    });
  }
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Sends one inline command over a raw socket; resolves the first reply line, or null on failure. */
export function rawCommand(port: number, command: string, timeoutMs = 500): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v: string | null) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      if (buf.includes('\r\n')) done(buf);
    });
    sock.on('error', () => done(null));
  });
}

/** Polls `cond` every `everyMs` until it holds or `timeoutMs` passed; returns whether it held. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function exited(p: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    p.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export interface RedisServerOptions {
  port?: number;
  /** Extra redis-server arguments, e.g. ['--cluster-enabled', 'yes']. */
  args?: string[];
  dir?: string;
}

export class RedisServer {
  private proc: ChildProcess | undefined;
  private stderr = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly ownsDir: boolean,
    private readonly args: string[],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    const ownsDir = opts.dir === undefined;
    const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-redis-'));
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = opts.port ?? (await freePort());
      const s = new RedisServer(port, dir, ownsDir, opts.args ?? []);
      try {
        await s.spawn();
        return s;
      } catch (err) {
        lastErr = err;
        if (opts.port !== undefined) break; // a fixed port: no point retrying elsewhere
      }
    }
    if (ownsDir) fs.rmSync(dir, { recursive: true, force: true });
    throw lastErr;
  }

  /** Starts (or starts again, after kill/stop) on the same port and dir. */
  async spawn(): Promise<void> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) throw new Error('redis-server already running');
    this.stderr = '';
    const proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--loglevel', 'warning', ...this.args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    const collect = (d: Buffer) => {
      if (this.stderr.length < 8000) this.stderr += d.toString('utf8');
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    const up = await waitUntil(async () => {
      if (proc.exitCode !== null) return true;
      return (await rawCommand(this.port, 'PING', 300))?.startsWith('+PONG') ?? false;
    }, 10_000);
    if (proc.exitCode !== null || !up) {
      proc.kill('SIGKILL');
      await exited(proc, 2000);
      throw new Error(`redis-server on port ${this.port} did not start: ${this.stderr.trim() || 'no output'}`);
    }
  }

  /** SIGKILL: the server vanishes mid-load (no goodbye to clients). */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    p.kill('SIGKILL');
    await exited(p, 5000);
  }

  /** SIGSTOP: the server is alive but answers nothing (a slow Redis). */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill('SIGCONT');
      p.kill('SIGTERM');
      if (!(await exited(p, 3000))) {
        p.kill('SIGKILL');
        await exited(p, 3000);
      }
    }
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Sends one command with redis-cli; returns its stdout. */
  cli(...args: string[]): string {
    const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), ...args], { encoding: 'utf8', timeout: 5000 });
    if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr || r.error?.message}`);
    return r.stdout.trim();
  }
}

/** A Redis Cluster of `masters` masters (no replicas) on loopback. */
export class RedisCluster {
  private constructor(readonly nodes: RedisServer[]) {}

  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /**
   * Starts the nodes and joins them with `redis-cli --cluster create`. Throws with redis-cli's
   * output when the cluster cannot be created.
   */
  static async start(masters = 3): Promise<RedisCluster> {
    const nodes: RedisServer[] = [];
    try {
      for (let i = 0; i < masters; i++) {
        const busPort = await freePort();
        nodes.push(
          await RedisServer.start({
            args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--cluster-port', String(busPort)],
          }),
        );
      }
      const out = await runBounded(
        'redis-cli',
        ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
        60_000,
      );
      if (out.code !== 0) throw new Error(`redis-cli --cluster create failed (${out.code}): ${out.output.slice(-2000)}`);
      const ok = await waitUntil(() => nodes.every((n) => n.cli('CLUSTER', 'INFO').includes('cluster_state:ok')), 20_000, 100);
      if (!ok) throw new Error('the Redis Cluster did not reach cluster_state:ok within 20 s');
      return new RedisCluster(nodes);
    } catch (err) {
      await Promise.all(nodes.map((n) => n.stop()));
      throw err;
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}

function runBounded(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(p);
    let output = '';
    p.stdout?.on('data', (d: Buffer) => (output += d.toString('utf8')));
    p.stderr?.on('data', (d: Buffer) => (output += d.toString('utf8')));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code) => {
      clearTimeout(timer);
      live.delete(p);
      resolve({ code, output });
    });
  });
}

// ---- gateway-side nodes over a shared Redis -------------------------------------------------

export const T0 = 1_800_000_000_000;

export interface NodeConfigOptions {
  redis: string | string[];
  onError?: 'local' | 'accept' | 'tempfail';
  maxDelay?: number | string;
  maxPending?: number;
  replicate?: 'cluster' | 'manager';
  /** Add a policy with mask 24 on `conn` (so /24 is kept as an aggregate in Redis). */
  mask24?: boolean;
  /** max_keys of the replicated series (conn, conn6, helo). */
  maxKeys?: number;
}

/**
 * A config with replicated series `conn` (cidr), `conn6` (cidr_ipv6, store_prefix 64), `helo`
 * (string), all 60 s × 4 windows, and `local_only` (cidr, replicate: none).
 */
export function nodeConfig(o: NodeConfigOptions): Config {
  const rep = o.replicate ?? 'cluster';
  const redis = JSON.stringify(o.redis);
  const mk = o.maxKeys === undefined ? '' : `, max_keys: ${o.maxKeys}`;
  const text = `
relay: { url: "smtp://127.0.0.1:10025" }
store: { redis: ${redis}, on_error: ${o.onError ?? 'local'}, max_delay: ${JSON.stringify(o.maxDelay ?? 1)}, max_pending: ${o.maxPending ?? 100} }
series:
  conn: { type: cidr, interval: 60, windows: 4, replicate: ${rep}${mk} }
  conn6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64, replicate: ${rep}${mk} }
  helo: { type: string, interval: 60, windows: 4, replicate: ${rep}${mk} }
  dest: { type: cidr, interval: 60, windows: 4, distinct: true, replicate: ${rep}${mk} }
  users: { type: string, interval: 60, windows: 4, distinct: true, replicate: ${rep}${mk} }
  local_only: { type: cidr, interval: 60, windows: 4 }
policies:
${
  o.mask24 === false
    ? '  []'
    : `  - { name: p24, on: connect, series: conn, mask: 24, windows: [0, 3], above: 1000, action: tempfail }
  - { name: d24, on: rcpt, series: dest, mask: 24, windows: [0, 3], above: 1000, action: tempfail }`
}
`;
  return parseConfigText(text, path.join(os.tmpdir(), 'auditgate-redis-test.yaml'));
}

export interface CapturedLog {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export function captureLogger(): { logger: Logger; lines: CapturedLog[] } {
  const lines: CapturedLog[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as CapturedLog);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, dest), lines };
}

export interface TestNode {
  store: RoutingStore;
  registry: SeriesRegistry;
  clock: ManualClock;
  config: Config;
  lines: CapturedLog[];
}

/** One gateway node: its own clock, registry (series defined from config) and store. */
export async function startNode(config: Config, tuning: RedisTuning = {}, clock = new ManualClock(T0)): Promise<TestNode> {
  const registry = new SeriesRegistry(clock);
  for (const d of seriesDefinitions(config)) registry.define(d); // as the gateway does

  const { logger, lines } = captureLogger();
  const store: ManagedStore = await createStore({ config, registry, clock, logger, redis: { probeIntervalMs: 100, ...tuning } });
  if (store.kind !== 'memory+redis') throw new Error(`expected a routing store, got ${store.kind}`);
  return { store: store as RoutingStore, registry, clock, config, lines };
}
