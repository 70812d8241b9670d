/**
 * Fronts benchmark (`npm run bench -- --only fronts`), loopback only, each figure against a
 * do-nothing responder of the same protocol measured in the same run (built on the same codec:
 * it reads what the MTA sends as any server of that protocol must, and decides nothing):
 *
 * - policy-service requests/s: 64 Postfix-like connections (bench/fronts-load.ts) against the
 *   gateway's policy service vs. a responder that answers DUNNO to every request;
 * - milter sessions/s, connect to end of message, one MTA connection per session as Postfix
 *   opens them, against the gateway's milter vs. a responder that negotiates and answers
 *   SMFIR_CONTINUE to everything;
 * - memory per idle MTA connection (heap + array buffers, after GC) held by the gateway vs. by
 *   the responder.
 *
 * The gateway counts like a real one: connect, helo and mail record into series (IPv4, IPv6 and
 * a string series), the built-in monitors, and per-address and per-/24 policies with thresholds
 * far above the load, so nothing is refused. Responder and gateway are measured in alternation,
 * ROUNDS times, and the ratio is the median of the rounds' ratios. The MTAs run in a forked
 * child (this compiled file with AUDITGATE_BENCH_FRONTS=1), the servers in this process.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfigText } from '../src/config/load.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { MilterDecoder } from '../src/milter/codec.js';
import { SMFIP } from '../src/milter/protocol.js';
import { encodeContinue, encodeOptneg } from '../src/milter/replies.js';
import { encodeAction, PolicyDecoder } from '../src/policy-service/codec.js';
import { openIdle, runLoad, type LoadResult, type LoadSpec } from './fronts-load.js';
import { heapBytes, type Figure } from './harness.js';
import { serveSockets } from './responder.js';

const CHILD_ENV = 'AUDITGATE_BENCH_FRONTS';
const CONCURRENCY = 64;
const ROUNDS = 5;
const WARMUP_MS = 500;
const ROUND_MS = 2_000;
const IDLE_CONNECTIONS = 2_000;

// ---------------------------------------------------------------------------------------------
// do-nothing responders (this process)

/** Reads requests with the codec (any policy server parses them) and answers DUNNO to each, deciding nothing. */
const policyResponder = () =>
  serveSockets((s) => {
    const decoder = new PolicyDecoder();
    const dunno = encodeAction('DUNNO');
    s.on('data', (chunk: Buffer) => {
      const r = decoder.push(chunk);
      for (let i = 0; i < r.requests.length; i++) s.write(dunno);
      if (r.error) s.destroy();
    });
  });

/** Frames packets with the codec, negotiates a fixed answer and says "continue" wherever an MTA waits. */
const milterResponder = () =>
  serveSockets((s) => {
    const decoder = new MilterDecoder();
    const optneg = encodeOptneg({ version: 6, actions: 0, protocol: SMFIP.NOBODY | SMFIP.NOHDRS | SMFIP.NOEOH | SMFIP.NOUNKNOWN });
    const cont = encodeContinue();
    s.on('data', (chunk: Buffer) => {
      const r = decoder.push(chunk);
      for (const c of r.messages) {
        if (c.type === 'optneg') s.write(optneg);
        else if (c.type === 'quit') s.end();
        else if (c.type !== 'macro' && c.type !== 'abort' && c.type !== 'quit_nc') s.write(cont);
      }
      if (r.error) s.destroy();
    });
  });

// ---------------------------------------------------------------------------------------------
// the gateway (this process)

function gatewayYaml(dir: string): string {
  return `server: { hostname: gw.bench, listen: [] }
milter: { listen: ["127.0.0.1:0"], max_connections: 10000 }
policy_service: { listen: ["127.0.0.1:0"], max_connections: 10000 }
state_dir: ${JSON.stringify(path.join(dir, 'state'))}
log_dir: ${JSON.stringify(path.join(dir, 'log'))}
admin: { enabled: false }
log: { level: silent }
monitors: ["300,6"]
series:
  connections: { type: cidr, interval: 60, windows: 4 }
  connections6: { type: cidr_ipv6, interval: 60, windows: 4, store_prefix: 64 }
  helos: { type: string, interval: 60, windows: 4 }
  mailfrom_domain: { type: string, interval: 60, windows: 4 }
record:
  - { on: connect, series: [connections, connections6] }
  - { on: helo, series: helos, key: "{helo}" }
  - { on: mail, series: mailfrom_domain, key: "{mail_from_domain}" }
policies:
  - { name: per-ip, on: connect, series: connections, mask: 32, windows: [0, 3], above: 1000000, action: tempfail }
  - { name: per-24, on: connect, series: connections, mask: 24, windows: [0, 3], above: 10000000, action: tempfail }
  - { name: per-64, on: connect, series: connections6, mask: 64, windows: [0, 3], above: 1000000, action: tempfail }
  - { name: per-domain, on: mail, series: mailfrom_domain, key: "{mail_from_domain}", windows: [0, 3], above: 100000000, action: tempfail }
`;
}

// ---------------------------------------------------------------------------------------------
// the MTA child

type ChildRequest = { id: number; load: LoadSpec } | { id: number; idle: { kind: 'milter' | 'policy'; port: number; n: number } } | { id: number; release: true };

if (process.env[CHILD_ENV] === '1' && process.send) {
  const counter = { next: 0 };
  let release: (() => void) | undefined;
  process.on('message', (m: ChildRequest) => {
    void (async () => {
      if ('load' in m) {
        await runLoad(m.load, m.load.warmupMs, counter);
        process.send!({ id: m.id, result: await runLoad(m.load, m.load.durationMs, counter) });
      } else if ('idle' in m) {
        release = await openIdle(m.idle.kind, m.idle.port, m.idle.n);
        process.send!({ id: m.id, result: null });
      } else {
        release?.();
        process.send!({ id: m.id, result: null });
      }
    })();
  });
  process.on('disconnect', () => process.exit(0));
}

function mtaChild(): { ask<T>(req: Omit<ChildRequest, 'id'>): Promise<T>; close(): void } {
  const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, [CHILD_ENV]: '1' }, execArgv: [], stdio: 'inherit' });
  let id = 0;
  const waiting = new Map<number, (v: unknown) => void>();
  child.on('message', (m: { id: number; result: unknown }) => {
    waiting.get(m.id)?.(m.result);
    waiting.delete(m.id);
  });
  return {
    ask: <T>(req: Omit<ChildRequest, 'id'>) =>
      new Promise<T>((resolve) => {
        const n = ++id;
        waiting.set(n, resolve as (v: unknown) => void);
        child.send({ ...req, id: n });
      }),
    close: () => {
      if (child.connected) child.disconnect();
    },
  };
}

// ---------------------------------------------------------------------------------------------

const rate = (r: LoadResult): number => r.done / (r.elapsedMs / 1000);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function check(what: string, r: LoadResult): void {
  const total = r.done + r.failures;
  if (total === 0 || r.failures > total * 0.01) throw new Error(`${what}: ${r.failures} of ${total} failed (> 1%): ${r.reasons.join(' | ')}`);
}

export async function benchFronts(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-bench-fronts-'));
  const child = mtaChild();
  const responders = { milter: await milterResponder(), policy: await policyResponder() };
  let gw: Gateway | undefined;
  try {
    gw = await startGateway({ config: parseConfigText(gatewayYaml(dir), path.join(dir, 'bench-fronts.yaml')) });
    const gwPort = { milter: (gw.milterAddresses()[0] as { port: number }).port, policy: (gw.policyAddresses()[0] as { port: number }).port };
    // memory first, while the gateway is fresh (later, series that age out would blur the heap)
    for (const kind of ['milter', 'policy'] as const) {
      const gwFront = kind === 'milter' ? gw.milter! : gw.policyService!;
      const perConnection = async (port: number, open: () => number): Promise<number> => {
        const before = heapBytes();
        await child.ask({ idle: { kind, port, n: IDLE_CONNECTIONS } });
        const after = heapBytes();
        await child.ask({ release: true });
        // the server side must have let go of every socket before the next "before"
        for (let i = 0; i < 1000 && open() > 0; i++) await new Promise((r) => setTimeout(r, 10));
        return (after - before) / IDLE_CONNECTIONS;
      };
      const base: number[] = [];
      const got: number[] = [];
      for (let i = 0; i < 3; i++) {
        base.push(await perConnection(responders[kind].port, () => responders[kind].open()));
        got.push(await perConnection(gwPort[kind], () => gwFront.stats.open));
      }
      const [value, baseline] = [median(got), median(base)];
      figures.push({ name: `memory per idle ${kind} MTA connection (${kind === 'milter' ? 'negotiated' : 'one request answered'}), heap`, value, unit: 'B', baseline, ratio: value / baseline });
    }
    for (const kind of ['policy', 'milter'] as const) {
      const unit = kind === 'policy' ? 'requests/s' : 'sessions/s';
      const base: number[] = [];
      const got: number[] = [];
      const ratios: number[] = [];
      const cpu = { base: [] as number[], got: [] as number[] };
      /** One phase; also the server-side (this process) CPU µs per request or session, warm-up included. */
      const phase = async (port: number, what: string): Promise<{ r: LoadResult; cpuPer: number }> => {
        const c0 = process.cpuUsage();
        const r = await child.ask<LoadResult>({ load: { kind, concurrency: CONCURRENCY, warmupMs: WARMUP_MS, durationMs: ROUND_MS, port } });
        const c = process.cpuUsage(c0);
        check(what, r);
        return { r, cpuPer: (c.user + c.system) / (r.done * ((WARMUP_MS + ROUND_MS) / ROUND_MS)) };
      };
      for (let round = 1; round <= ROUNDS; round++) {
        const b = await phase(responders[kind].port, `${kind} responder`);
        const g = await phase(gwPort[kind], `${kind} gateway`);
        base.push(rate(b.r));
        got.push(rate(g.r));
        ratios.push(rate(g.r) / rate(b.r));
        cpu.base.push(b.cpuPer);
        cpu.got.push(g.cpuPer);
        console.error(
          `round ${round}: ${kind} responder ${rate(b.r).toFixed(0)} ${unit} (${b.cpuPer.toFixed(0)} µs CPU each), gateway ${rate(g.r).toFixed(0)} ${unit} (${g.cpuPer.toFixed(0)} µs CPU each): ${(rate(g.r) / rate(b.r)).toFixed(2)}×`,
        );
      }
      figures.push({
        name: kind === 'policy' ? `policy service, ${CONCURRENCY} MTA connections, 6 requests per SMTP session` : `milter sessions (connect to end of message, one MTA connection each), ${CONCURRENCY} at once`,
        value: median(got),
        unit,
        baseline: median(base),
        ratio: median(ratios), // throughput: higher is better (median of the rounds' ratios)
        target: '≥ 0.6×',
      });
      // the same comparison in server CPU per request / session (steadier than throughput on a busy machine)
      figures.push({
        name: `${kind === 'policy' ? 'policy service' : 'milter'}: server CPU per ${kind === 'policy' ? 'request' : 'session'} (approximate: warm-up included)`,
        value: median(cpu.got),
        unit: 'µs',
        baseline: median(cpu.base),
        ratio: median(cpu.got) / median(cpu.base), // cost: lower is better
      });
    }
  } finally {
    child.close();
    await gw?.close(500);
    await responders.milter.close();
    await responders.policy.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}
