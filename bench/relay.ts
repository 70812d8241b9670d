/**
 * Relay benchmarks, loopback only: full SMTP sessions/s through the gateway (64 clients, 1 KiB
 * messages, PROXY headers from 4,096 addresses, as in the gateway suite) with
 *   - two backends, relay.strategy round_robin, against the same gateway with one backend;
 *   - STARTTLS to the backend (relay.tls.mode required, certificate checked; pooled connections
 *     keep their TLS, so a handshake is paid per connection, not per message) against plain.
 * The three gateways (one backend, two, one over TLS) are measured in alternation, ROUNDS times
 * (each round in another order), each backend a do-nothing responder in a process of its own;
 * each figure is the median of the rounds' ratios to the one-backend plain gateway measured in
 * the same round.
 *
 * Sessions/s on a machine shared with other work swings from round to round (other processes
 * take the cores), so each round also gives the gateway's CPU time per session (this process
 * hosts the gateways and nothing else: clients and backends run in processes of their own),
 * which a busy machine moves far less; reported as a cost ratio (lower is better).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../src/config/load.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { backendProcess } from './responder.js';
import { checkFull, clientProcess, FULL_POLICIES, gatewayYaml, measured, median, rate } from './gateway-kit.js';
import type { Figure } from './harness.js';

const CONCURRENCY = 64;
/** Short rounds, many of them, in a rotating order: a busy spell on a shared machine hits every target alike. */
const ROUNDS = 9;
const ROUND_WARMUP_MS = 300;
const ROUND_MS = 1_500;

/** A self-signed certificate for the responder's STARTTLS, trusted by the gateway as its own CA. */
function makeCertificate(dir: string): { key: string; cert: string } {
  const key = path.join(dir, 'sink-key.pem');
  const cert = path.join(dir, 'sink.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=sink.bench', '-addext', 'subjectAltName=DNS:sink.bench'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`openssl could not make the benchmark certificate: ${r.error?.message ?? r.stderr}`);
  return { key, cert };
}

export async function benchRelay(): Promise<Figure[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-bench-relay-'));
  const tlsFiles = makeCertificate(dir);
  const clients = clientProcess();
  const first = await backendProcess(true);
  const second = await backendProcess(true);
  const secure = await backendProcess(true, tlsFiles);
  const targets: Array<{ label: string; gw: Gateway; port: number; ratios: number[]; rates: number[]; cpu: number[]; cpuRatios: number[] }> = [];
  try {
    const setups = [
      ['one backend', { url: `smtp://127.0.0.1:${first.port}` }],
      ['two backends, round_robin', { url: `["smtp://127.0.0.1:${first.port}", "smtp://127.0.0.1:${second.port}"]`, extra: '  strategy: round_robin\n' }],
      ['one backend, STARTTLS (required, pooled)', { url: `smtp://127.0.0.1:${secure.port}`, extra: `  tls: { mode: required, ca: "${tlsFiles.cert}", servername: sink.bench }\n` }],
    ] as const;
    for (const [label, relay] of setups) {
      const gw = await startGateway({ config: parseConfigText(gatewayYaml(relay, dir, FULL_POLICIES), 'bench-relay.yaml') });
      targets.push({ label, gw, port: gw.smtpAddresses()[0]!.port, ratios: [], rates: [], cpu: [], cpuRatios: [] });
    }
    const spec = { concurrency: CONCURRENCY, warmupMs: ROUND_WARMUP_MS, durationMs: ROUND_MS, mode: 'full' as const, proxy: true };
    for (let round = 1; round <= ROUNDS; round++) {
      const rates = new Map<string, number>();
      const cpu = new Map<string, number>();
      const order = [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)];
      for (const t of order) {
        await clients.run({ ...spec, port: t.port, warmupMs: 0, durationMs: ROUND_WARMUP_MS });
        // warmupMs 0: one uncounted session per client before the measured phase, inside the CPU window
        const c0 = process.cpuUsage();
        const r = await measured(`round ${round}: gateway full (${t.label}), ${CONCURRENCY} clients`, clients, { ...spec, port: t.port, warmupMs: 0 });
        const c = process.cpuUsage(c0);
        checkFull(`gateway (${t.label})`, r);
        rates.set(t.label, rate(r));
        cpu.set(t.label, (c.user + c.system) / (r.sessions + CONCURRENCY));
      }
      const base = rates.get(targets[0]!.label)!;
      const baseCpu = cpu.get(targets[0]!.label)!;
      for (const t of targets) {
        t.rates.push(rates.get(t.label)!);
        t.ratios.push(rates.get(t.label)! / base);
        t.cpu.push(cpu.get(t.label)!);
        t.cpuRatios.push(cpu.get(t.label)! / baseCpu);
      }
    }
    const stats = targets.map((t) => `${t.label}: ${JSON.stringify(t.gw.relay.stats().backends)} opened ${t.gw.relay.stats().opened}`);
    console.error(`relay backends after the run: ${stats.join('; ')}`);
    const [one, two, withTls] = targets as [(typeof targets)[0], (typeof targets)[0], (typeof targets)[0]];
    for (const t of [two, withTls]) {
      console.error(`gateway full (${t.label}) vs one backend: ratios by round ${t.ratios.map((x) => x.toFixed(2)).join(', ')}`);
      console.error(`gateway full (${t.label}) vs one backend: CPU per session ratios by round ${t.cpuRatios.map((x) => x.toFixed(2)).join(', ')}`);
    }
    const cpuFigure = (t: (typeof targets)[0], what: string): Figure => ({
      name: `gateway CPU per full session: ${what}`,
      value: median(t.cpu),
      unit: 'µs',
      baseline: median(one.cpu),
      ratio: median(t.cpuRatios),
    });
    return [
      {
        name: `full sessions, ${CONCURRENCY} clients: two backends round_robin vs one`,
        value: median(two.rates),
        unit: 'sessions/s',
        baseline: median(one.rates),
        ratio: median(two.ratios),
        target: '≥ 0.95×',
      },
      {
        name: `full sessions, ${CONCURRENCY} clients: STARTTLS to the backend (pooled) vs plain`,
        value: median(withTls.rates),
        unit: 'sessions/s',
        baseline: median(one.rates),
        ratio: median(withTls.ratios),
      },
      cpuFigure(two, 'two backends round_robin vs one'),
      cpuFigure(withTls, 'STARTTLS to the backend (pooled) vs plain'),
    ];
  } finally {
    for (const t of targets) await t.gw.close(2000);
    clients.close();
    first.close();
    second.close();
    secure.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
