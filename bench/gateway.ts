/**
 * Gateway benchmarks, loopback only: full SMTP sessions/s and connect-time refusals/s through
 * auditgate, each against a do-nothing SMTP responder measured in the same run.
 *
 * The clients run in a forked child (bench/gateway-kit.ts, started with
 * AUDITGATE_BENCH_CLIENT=1) so that on a 2-core machine the clients get one core and the
 * server side (the responder, or the gateway) the other. The gateway's backend responder runs
 * in a process of its own (bench/responder.ts, AUDITGATE_BENCH_BACKEND), as a backend MTA would.
 *
 * Throughput figures: ratio = value / baseline (sessions/s ÷ responder sessions/s), so here
 * higher is better, unlike the ns/op figures of the other suites.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../src/config/load.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { RoutingStore } from '../src/store/create.js';
import { Redis } from 'ioredis';
import type { Figure } from './harness.js';
import { startResponder, backendProcess } from './responder.js';
import { SOURCES, measured, clientProcess, gatewayYaml, rate, median, FULL_POLICIES, startRedisServer, checkFull, checkConnect, type RunResult, type RedisServer } from './gateway-kit.js';

export const CONCURRENCY = 64;
const WARMUP_MS = 1_000;
const DURATION_MS = 5_000;
/** Full-session figures: responder and gateway alternate this many times, ROUND_MS measured each (the median ratio is reported). */
export const ROUNDS = 5;
export const ROUND_WARMUP_MS = 500;
export const ROUND_MS = 2_000;

/** What Redis holds, read directly (not through the gateway's store). */
async function redisHolds(port: number): Promise<{ keys: number; leafHashes: number; leafFields: number; leafSum: number }> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, commandTimeout: 5000 });
  try {
    await r.connect();
    const keys = await r.keys('*');
    let leafHashes = 0;
    let leafFields = 0;
    let leafSum = 0;
    for (const k of keys) {
      if (!k.endsWith(':l')) continue;
      leafHashes++;
      const vals = await r.hvals(k);
      leafFields += vals.length;
      for (const v of vals) leafSum += Number(v);
    }
    return { keys: keys.length, leafHashes, leafFields, leafSum };
  } finally {
    r.disconnect();
  }
}

export async function benchGateway(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-bench-'));
  const clients = clientProcess();
  const sink = await startResponder();
  // Two backends: one offers CHUNKING (as Postfix, Exim and Exchange do: the gateway sends
  // BDAT, one round trip per message), one DATA only (two round trips per message).
  const backend = await backendProcess(true);
  const dataBackend = await backendProcess(false);
  let gw: Gateway | undefined;
  let redis: RedisServer | undefined;
  const startGw = async (file: string, policies: string, replicate?: { redisPort: number }, backendPort = backend.port): Promise<number> => {
    gw = await startGateway({ config: parseConfigText(gatewayYaml(backendPort, dir, policies, replicate), file) });
    return gw.smtpAddresses()[0]!.port;
  };
  const stopGw = async (): Promise<void> => {
    await gw?.close(2000);
    gw = undefined;
  };
  try {
    // 64 clients is the specified figure; the 512-client rows show the same load with more
    // connections in flight. The gateway greets at once (server.greet_delay defaults to 0).
    for (const concurrency of [CONCURRENCY, 8 * CONCURRENCY]) {
      const spec = { concurrency, warmupMs: WARMUP_MS, durationMs: DURATION_MS };
      const tag = `${concurrency} clients`;

      // Full sessions: the responder and the gateway (to each backend; thresholds far above the
      // load, so nothing is refused) measured in alternation, ROUNDS times, so that a busy spell
      // on the shared machine hits both sides; the ratio is the median of the rounds' ratios.
      const rspec = { concurrency, warmupMs: ROUND_WARMUP_MS, durationMs: ROUND_MS };
      const targets: Array<{ label: string; gw: Gateway; port: number; rates: number[]; ratios: number[] }> = [];
      try {
        for (const [label, backendPort] of [
          ['backend offers CHUNKING', backend.port],
          ['backend DATA only', dataBackend.port],
        ] as const) {
          const g = await startGateway({ config: parseConfigText(gatewayYaml(backendPort, dir, FULL_POLICIES), 'bench-gateway.yaml') });
          targets.push({ label, gw: g, port: g.smtpAddresses()[0]!.port, rates: [], ratios: [] });
        }
        const baseRates: number[] = [];
        for (let round = 1; round <= ROUNDS; round++) {
          const base = await measured(`round ${round}: responder full, ${tag}`, clients, { ...rspec, port: sink.port, mode: 'full', proxy: false });
          checkFull('responder', base);
          baseRates.push(rate(base));
          for (const t of targets) {
            const r = await measured(`round ${round}: gateway full (${t.label}), ${tag}`, clients, { ...rspec, port: t.port, mode: 'full', proxy: true });
            checkFull(`gateway (${t.label})`, r);
            t.rates.push(rate(r));
            t.ratios.push(rate(r) / rate(base));
          }
        }
        for (const t of targets) {
          console.error(`gateway full (${t.label}), ${tag}: ratios by round ${t.ratios.map((x) => x.toFixed(2)).join(', ')}`);
          figures.push({
            name: `full sessions, 1 KiB, ${tag}, ${SOURCES} sources, ${t.label}`,
            value: median(t.rates),
            unit: 'sessions/s',
            baseline: median(baseRates),
            ratio: median(t.ratios), // throughput: value / baseline, higher is better (median of the rounds)
            target: '≥ 0.5×',
          });
        }
      } finally {
        for (const t of targets) await t.gw.close(2000);
      }
      const baseConn = await measured(`responder connect-only, ${tag}`, clients, { ...spec, port: sink.port, mode: 'connect', proxy: false });
      checkConnect('responder', baseConn);

      // Connect-only under low thresholds: a /32 gets 1 connection per 4 minutes and a /24
      // (there are 16) gets 4, so all but the first 64 connections are refused with 421.
      const port = await startGw(
        'bench-gateway-refuse.yaml',
        `  - { name: per-ip, on: connect, series: connections, mask: 32, windows: [0, 3], above: 1, action: tempfail }
  - { name: per-24, on: connect, series: connections, mask: 24, windows: [0, 3], above: 4, action: tempfail }`,
      );
      const gwConn = await measured(`gateway connect-only, ${tag}`, clients, { ...spec, port, mode: 'connect', proxy: true });
      await stopGw();
      checkConnect('gateway', gwConn);
      const refusedPct = (100 * gwConn.refused) / Math.max(1, gwConn.refused + gwConn.accepted);
      console.error(`gateway connect-only, ${tag}: ${gwConn.refused} refused (421), ${gwConn.accepted} accepted (220): ${refusedPct.toFixed(1)}% refused`);
      const conn = rate(gwConn);
      const baseConnRate = rate(baseConn);
      figures.push({
        name: `connect-only, ${tag}, ${refusedPct.toFixed(0)}% refused`,
        value: conn,
        unit: 'sessions/s',
        baseline: baseConnRate,
        ratio: conn / baseConnRate, // throughput: value / baseline, higher is better
        target: '≥ 0.7×',
      });
    }

    // Full sessions with the series replicated through a real Redis (replicate: cluster: every
    // connect's counts are read from Redis) against the same gateway with replicate: none,
    // measured back to back at the specified 64 clients.
    redis = await startRedisServer();
    if (redis) {
      const spec = { concurrency: CONCURRENCY, warmupMs: WARMUP_MS, durationMs: DURATION_MS };
      const tag = `${CONCURRENCY} clients`;
      let port = await startGw('bench-gateway-memory.yaml', FULL_POLICIES);
      const memFull = await measured(`gateway full, replicate: none, ${tag}`, clients, { ...spec, port, mode: 'full', proxy: true });
      await stopGw();
      checkFull('gateway (replicate: none)', memFull);

      port = await startGw('bench-gateway-cluster.yaml', FULL_POLICIES, { redisPort: redis.port });
      const g = gw!;
      // Sample the store state through the run: "stayed ok" means no fallback was ever seen.
      const states = new Set<string>([g.store.status().state]);
      const sampler = setInterval(() => states.add(g.store.status().state), 20);
      let clusterFull: RunResult;
      try {
        clusterFull = await measured(`gateway full, replicate: cluster (redis :${redis.port}), ${tag}`, clients, { ...spec, port, mode: 'full', proxy: true });
      } finally {
        clearInterval(sampler);
      }
      states.add(g.store.status().state);
      if (g.store instanceof RoutingStore) await g.store.flush();
      const st = g.store.status();
      const viaStore = await g.store.count('connections', '0.0.0.0/0', 0, 3);
      const raw = await redisHolds(redis.port);
      await stopGw();
      checkFull('gateway (replicate: cluster)', clusterFull);
      console.error(
        `replicate: cluster store: kind ${st.kind}, state now ${st.state}, states seen during the run [${[...states].join(', ')}], ` +
          `errors ${st.errors}, pending ${st.pending}, dropped ${st.dropped ?? 0}${st.lastError ? `, last error: ${st.lastError}` : ''}`,
      );
      console.error(
        `replicate: cluster redis holds: store.count('connections', '0.0.0.0/0', 0, 3) = ${viaStore}; ` +
          `raw: ${raw.keys} keys, ${raw.leafHashes} leaf hashes with ${raw.leafFields} fields summing to ${raw.leafSum}`,
      );
      if (raw.leafSum <= 0 || viaStore <= 0) throw new Error(`replicate: cluster: Redis holds no counts (store.count ${viaStore}, raw leaf sum ${raw.leafSum}); the figure would be meaningless`);
      if (states.has('fallback') || st.errors > 0) console.error(`replicate: cluster: WARNING the store left state ok during the run (errors ${st.errors}); the figure includes local fallback`);
      const memRate = rate(memFull);
      const clusterRate = rate(clusterFull);
      figures.push({
        name: 'full sessions, replicate: cluster vs memory',
        value: clusterRate,
        unit: 'sessions/s',
        baseline: memRate,
        ratio: clusterRate / memRate, // throughput: value / baseline, higher is better
        target: '≥ 0.5×',
      });
    }
  } finally {
    clients.close();
    await stopGw();
    await redis?.stop();
    await sink.close();
    backend.close();
    dataBackend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}
