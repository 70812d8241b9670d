/**
 * A soak: clients that misbehave the way the internet does, for a while, against one gateway
 * (default config policies, a persisted series of 200,000 keys, a backend responder in its own
 * process). Mixed per session, half over IPv6 (PROXY headers from 4,096 + 4,096 sources):
 * complete sessions, TCP resets (SO_LINGER 0) at every step, clients vanishing mid-message,
 * pipelining past the junk-command and error limits, garbage commands.
 *
 * What it reports (opt-in: `npm run bench -- --only soak`, `SOAK_MS` sets the length, default 60 s):
 *   - sessions handled per second, and how they ended;
 *   - warn/error log lines (client behaviour must not produce any), store and relay failures;
 *   - the longest event-loop stall during the soak vs. during an idle period of the same
 *     length measured first (persistence saves included in both);
 *   - RSS and heap after the soak vs. before it, and sessions or backend transactions left open.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseConfigText } from '../src/config/load.js';
import { startGateway } from '../src/gateway.js';
import { backendProcess } from './responder.js';
import { gc, rng, type Figure } from './harness.js';

const CLIENT_ENV = 'AUDITGATE_SOAK_CLIENT';
const CONCURRENCY = 48;
const PERSISTED_KEYS = 200_000;

type Kind = 'complete' | 'reset' | 'vanish' | 'junk' | 'garbage';

interface Tally {
  sessions: number;
  byKind: Record<Kind, number>;
  unexpected: number;
  reasons: string[];
}

// ---------------------------------------------------------------------------------------------
// clients (child process)

function source(i: number): string {
  const n = (i >>> 1) % 4096;
  return i % 2 === 0 ? `198.18.${n >>> 8}.${n & 255}` : `2001:db8:50a:${n.toString(16)}::${(i % 7) + 1}`;
}

function proxyLine(ip: string, i: number): string {
  return ip.includes(':') ? `PROXY TCP6 ${ip} ::1 ${1024 + (i % 60000)} 25\r\n` : `PROXY TCP4 ${ip} 127.0.0.1 ${1024 + (i % 60000)} 25\r\n`;
}

/** One session of kind `kind`; resolves when it is over, whatever happened. */
function session(port: number, i: number, kind: Kind, stopAt: number, tally: Tally): Promise<void> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setEncoding('latin1');
    sock.on('error', () => undefined);
    let buf = '';
    let step = 0;
    let done = false;
    const end = (how: 'reset' | 'destroy' | 'quiet', note?: string): void => {
      if (done) return;
      done = true;
      if (note !== undefined) {
        tally.unexpected++;
        if (tally.reasons.length < 8) tally.reasons.push(note);
      }
      if (how === 'reset' && !sock.destroyed) sock.resetAndDestroy();
      else sock.destroy();
      tally.sessions++;
      tally.byKind[kind]++;
      resolve();
    };
    sock.on('close', () => end('quiet', kind === 'complete' && step < 7 ? `complete session closed at step ${step}` : undefined));
    sock.on('connect', () => sock.write(proxyLine(source(i), i)));
    const body = `Subject: soak ${i}\r\n\r\n${'soak line\r\n'.repeat(40)}`;
    const script: Array<() => void> = [
      () => sock.write('EHLO soak.example\r\n'),
      () => sock.write(`MAIL FROM:<s${i % 97}@soak${i % 13}.example>\r\n`),
      () => sock.write(`RCPT TO:<r${i % 31}@dest.example>\r\n`),
      () => sock.write('DATA\r\n'),
      () => sock.write(`${body}.\r\n`),
      () => sock.write('QUIT\r\n'),
    ];
    const onReply = (code: number, line: string): void => {
      if (kind === 'reset' && step === stopAt) return end('reset');
      if (kind === 'vanish' && step === 4 && code === 354) {
        sock.write(body.slice(0, body.length >> 1));
        return end('destroy');
      }
      if (kind === 'junk' && step === 1) {
        sock.write('NOOP\r\n'.repeat(160));
        step = 99;
        return;
      }
      if (kind === 'garbage' && step === 1) {
        sock.write('FROB nicate\r\n'.repeat(8) + `MAIL FROM:<${'x'.repeat(3000)}@a>\r\n` + 'RCPT TO:<nobody>\r\n'.repeat(20));
        step = 99;
        return;
      }
      if (step >= 99) {
        if (code === 421) end('quiet');
        return;
      }
      if (code >= 400 && kind === 'complete') {
        // a policy refusal (the default policies limit per client) is an answer, not a fault
        if (code === 421 || code === 451 || code === 550 || code === 554) return end('quiet');
        return end('destroy', `step ${step}: ${line.slice(0, 80)}`);
      }
      const next = script[step];
      step++;
      if (next) next();
      else end('quiet');
    };
    sock.on('data', (d: string) => {
      buf += d;
      for (;;) {
        const nl = buf.indexOf('\r\n');
        if (nl < 0 || done) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (line.charCodeAt(3) === 45) continue;
        onReply(Number(line.slice(0, 3)), line);
      }
    });
  });
}

async function clientMain(port: number, ms: number): Promise<void> {
  const r = rng(42);
  const tally: Tally = { sessions: 0, byKind: { complete: 0, reset: 0, vanish: 0, junk: 0, garbage: 0 }, unexpected: 0, reasons: [] };
  const deadline = performance.now() + ms;
  let i = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const x = r();
      const kind: Kind = x < 0.45 ? 'complete' : x < 0.75 ? 'reset' : x < 0.85 ? 'vanish' : x < 0.93 ? 'junk' : 'garbage';
      await session(port, i++, kind, Math.floor(r() * 6), tally);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  process.send!(tally);
}

if (process.env[CLIENT_ENV] && process.send) {
  const [port, ms] = process.env[CLIENT_ENV].split(',').map(Number);
  void clientMain(port!, ms!).then(() => process.disconnect());
}

// ---------------------------------------------------------------------------------------------
// the gateway (this process)

function defaultPolicies(): string {
  const text = fs.readFileSync(fileURLToPath(new URL('../../config/auditgate.yaml', import.meta.url)), 'utf8');
  const monitors = /^monitors: .*$/m.exec(text)?.[0] ?? '';
  return `${monitors}\n${text.slice(text.indexOf('\nseries:') + 1)}`;
}

export async function benchSoak(): Promise<Figure[]> {
  const ms = Number(process.env.SOAK_MS ?? 60_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-soak-'));
  const backend = await backendProcess(false);
  const levels = { warn: 0, error: 0, fatal: 0 };
  const messages = new Map<string, number>();
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        const { level, msg } = JSON.parse(line) as { level: number; msg: string };
        if (level >= 40) {
          if (level >= 60) levels.fatal++;
          else if (level >= 50) levels.error++;
          else levels.warn++;
          messages.set(msg, (messages.get(msg) ?? 0) + 1);
        }
      }
      cb();
    },
  });
  const yaml = `server:
  hostname: soak.bench
  listen: ["127.0.0.1:0"]
  proxy_protocol: [127.0.0.0/8]
  max_clients: 5000
relay: { url: "smtp://127.0.0.1:${backend.port}", timeout: 5s }
state_dir: ${dir}/state
log_dir: ${dir}/log
persist_interval: 5s
admin: { enabled: false }
${defaultPolicies().replace('interval: 15m, windows: 4, persist: true }', 'interval: 15m, windows: 4, persist: true, max_keys: 400000 }')}`;
  const gw = await startGateway({ config: parseConfigText(yaml, path.join(dir, 'soak.yaml')), logger: pino({ level: 'info' }, sink) });
  try {
    // a persisted series with 200,000 keys, saved every 5 s while idle and during the soak
    for (let k = 0; k < PERSISTED_KEYS; k++) await gw.store.add('connections', `10.${(k >>> 16) & 255}.${(k >>> 8) & 255}.${k & 255}`, 1 + (k % 3));
    const port = gw.smtpAddresses()[0]!.port;
    const idleMs = Math.min(ms, 15_000);
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    await new Promise((r) => setTimeout(r, idleMs));
    loop.disable();
    const idleMax = loop.max / 1e6;
    gc();
    const rss0 = process.memoryUsage().rss;
    const heap0 = process.memoryUsage().heapUsed;
    loop.reset();
    loop.enable();
    const t0 = performance.now();
    const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, [CLIENT_ENV]: `${port},${ms}` }, execArgv: [], stdio: 'inherit' });
    const tally = await new Promise<Tally>((resolve, reject) => {
      child.once('message', (m) => resolve(m as Tally));
      child.once('exit', (code) => reject(new Error(`soak clients exited (${code}) without a result`)));
    });
    const elapsed = performance.now() - t0;
    loop.disable();
    const deadline = Date.now() + 10_000;
    while ((gw.front.openSessions() > 0 || gw.relay.stats().active > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    gc();
    const rss1 = process.memoryUsage().rss;
    const heap1 = process.memoryUsage().heapUsed;
    console.error(`soak: ${tally.sessions} sessions in ${(elapsed / 1000).toFixed(0)} s: ${JSON.stringify(tally.byKind)}; unexpected ${tally.unexpected} ${tally.reasons.join(' | ')}`);
    console.error(`soak: warn ${levels.warn}, error ${levels.error}, fatal ${levels.fatal} ${JSON.stringify(Object.fromEntries(messages))}`);
    console.error(`soak: open sessions ${gw.front.openSessions()}, active relay transactions ${gw.relay.stats().active}, store failures ${gw.recorder.storeFailureCount()}, relay failures ${gw.front.stats.relayFailures}`);
    const rate = (tally.sessions * 1000) / elapsed;
    return [
      { name: 'soak: sessions handled (mixed misbehaviour, half IPv6)', value: rate, unit: 'sessions/s', baseline: rate, ratio: 1 },
      { name: 'soak: warn+error+fatal log lines', value: levels.warn + levels.error + levels.fatal, unit: 'lines', baseline: tally.sessions, ratio: (levels.warn + levels.error + levels.fatal) / tally.sessions, target: '0' },
      { name: 'soak: store + relay failures', value: gw.recorder.storeFailureCount() + gw.front.stats.relayFailures, unit: 'failures', baseline: tally.sessions, ratio: (gw.recorder.storeFailureCount() + gw.front.stats.relayFailures) / tally.sessions, target: '0' },
      { name: 'soak: sessions + transactions left open after it', value: gw.front.openSessions() + gw.relay.stats().active, unit: 'open', baseline: 0, ratio: 0, target: '0' },
      { name: 'soak: longest event-loop stall vs idle (200k-key series saved every 5 s)', value: loop.max / 1e6, unit: 'ms', baseline: idleMax, ratio: loop.max / 1e6 / idleMax },
      { name: 'soak: RSS after vs before', value: rss1 / 1048576, unit: 'MiB', baseline: rss0 / 1048576, ratio: rss1 / rss0 },
      { name: 'soak: heap after vs before (after GC)', value: heap1 / 1048576, unit: 'MiB', baseline: heap0 / 1048576, ratio: heap1 / heap0 },
    ];
  } finally {
    await gw.close(1000);
    backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
