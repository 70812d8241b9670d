/**
 * Operator controls benchmarks (loopback, the gateway suite's client and backend processes):
 *
 * - full sessions/s through a gateway holding 100,000 active bans (IPv4 and IPv6, eight prefix
 *   lengths, none covering the clients) against the same gateway with none;
 * - connect-only refusals/s of banned clients (a ban covers every client address, on top of the
 *   100,000) against clients refused by a policy (above: 0);
 * - full sessions/s with replicate: cluster against replicate: none after the near-threshold
 *   change (redis-store.ts, countHolding), thresholds far above the load.
 *
 * Each pair runs as two gateways at once, measured in alternation (PAIR_ROUNDS times) so that a
 * busy spell on the shared machine hits both sides; the ratio is the median of the rounds'
 * ratios (throughput: value / baseline, higher is better).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../src/config/load.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { RoutingStore } from '../src/store/create.js';
import type { Figure } from './harness.js';
import { CONCURRENCY, ROUNDS, ROUND_MS, ROUND_WARMUP_MS } from './gateway.js';
import { backendProcess } from './responder.js';
import {
  FULL_POLICIES,
  type RunResult,
  type RunSpec,
  checkConnect,
  checkFull,
  clientProcess,
  gatewayYaml,
  measured,
  median,
  rate,
  startRedisServer,
} from './gateway-kit.js';

const BANS = 100_000;
/** Every bench client address (198.18.0.0 – 198.18.15.255). */
const CLIENTS_PREFIX = '198.18.0.0/20';

/** 100,000 distinct prefixes of mixed lengths and families, none holding a bench client. */
export function banPrefixes(): string[] {
  const out: string[] = [];
  const v4 = (first: number, n: number, mask: number, step: number): void => {
    for (let i = 0; i < n; i++) {
      const a = i * step;
      out.push(`${first}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${mask}`);
    }
  };
  v4(10, 40_000, 32, 1);
  v4(11, 10_000, 28, 16);
  v4(12, 5_000, 24, 256);
  v4(13, 1_000, 20, 4096);
  v4(14, 100, 16, 65536);
  for (let i = 0; i < 30_000; i++) out.push(`2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::/64`);
  for (let i = 0; i < 10_000; i++) out.push(`2001:db9:${i.toString(16)}::/48`);
  for (let i = 0; i < 3_900; i++) out.push(`2001:dba::${i.toString(16)}/128`);
  if (out.length !== BANS) throw new Error(`expected ${BANS} ban prefixes, made ${out.length}`);
  return out;
}

interface Side {
  label: string;
  gw: Gateway;
  port: number;
}

/** Rounds per pair: more than the gateway suite's, as a pair's sides differ by little. */
const PAIR_ROUNDS = Math.max(ROUNDS, 7);

interface PairResult {
  /** Median sessions/s of each side, and the median of the rounds' ratios (other / base). */
  base: number;
  value: number;
  ratio: number;
  /** The same for sessions per second of this (the gateways') process's CPU time. */
  baseCpu: number;
  valueCpu: number;
  ratioCpu: number;
}

/**
 * Measures `base` and `other` in alternation PAIR_ROUNDS times, which one goes first switching
 * each round; every run is checked with `check`. Sessions per CPU second of the gateways'
 * process (the clients and the backend run in processes of their own) are reported beside the
 * rates: on a shared machine they vary less than sessions/s.
 */
async function alternate(
  clients: ReturnType<typeof clientProcess>,
  mode: RunSpec['mode'],
  base: Side,
  other: Side,
  check: (what: string, r: RunResult) => void,
): Promise<PairResult> {
  const spec = { concurrency: CONCURRENCY, warmupMs: ROUND_WARMUP_MS, durationMs: ROUND_MS, mode, proxy: true };
  const one = async (round: number, side: Side): Promise<{ rate: number; cpu: number }> => {
    const c0 = process.cpuUsage();
    const r = await measured(`round ${round}: ${side.label}`, clients, { ...spec, port: side.port });
    const c = process.cpuUsage(c0);
    check(side.label, r);
    // the CPU time covers the warm-up too: sessions of both phases over it
    const all = r.sessions * ((ROUND_WARMUP_MS + ROUND_MS) / ROUND_MS);
    return { rate: rate(r), cpu: all / ((c.user + c.system) / 1e6) };
  };
  const b: Array<{ rate: number; cpu: number }> = [];
  const o: Array<{ rate: number; cpu: number }> = [];
  for (let round = 1; round <= PAIR_ROUNDS; round++) {
    if (round % 2) {
      b.push(await one(round, base));
      o.push(await one(round, other));
    } else {
      o.push(await one(round, other));
      b.push(await one(round, base));
    }
  }
  const ratios = o.map((x, i) => x.rate / b[i]!.rate);
  const cpuRatios = o.map((x, i) => x.cpu / b[i]!.cpu);
  console.error(`${other.label} vs ${base.label}: sessions/s ratios by round ${ratios.map((x) => x.toFixed(2)).join(', ')}; per CPU second ${cpuRatios.map((x) => x.toFixed(2)).join(', ')}`);
  return {
    base: median(b.map((x) => x.rate)),
    value: median(o.map((x) => x.rate)),
    ratio: median(ratios),
    baseCpu: median(b.map((x) => x.cpu)),
    valueCpu: median(o.map((x) => x.cpu)),
    ratioCpu: median(cpuRatios),
  };
}

/** The two figures of a pair: sessions/s and sessions per CPU second, with the same target. */
function pairFigures(name: string, r: PairResult, target: string): Figure[] {
  return [
    { name, value: r.value, unit: 'sessions/s', baseline: r.base, ratio: r.ratio, target },
    { name: `${name}, per gateway CPU second`, value: r.valueCpu, unit: 'sessions/cpu-s', baseline: r.baseCpu, ratio: r.ratioCpu, target },
  ];
}

export async function benchControls(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-bench-controls-'));
  const clients = clientProcess();
  const backend = await backendProcess(true);
  const gws: Gateway[] = [];
  let started = 0;
  const start = async (label: string, policies: string, replicate?: { redisPort: number }): Promise<Side> => {
    const n = started++; // a state_dir of its own: no gateway reloads another's bans
    const gw = await startGateway({ config: parseConfigText(gatewayYaml(backend.port, path.join(dir, String(n)), policies, replicate), `bench-controls-${n}.yaml`) });
    gws.push(gw);
    return { label, gw, port: gw.smtpAddresses()[0]!.port };
  };
  const stopAll = async (): Promise<void> => {
    for (const g of gws.splice(0)) await g.close(2000);
  };
  const banAll = (side: Side, extra: string[] = []): void => {
    const t0 = performance.now();
    for (const p of [...banPrefixes(), ...extra]) side.gw.controls.add(p, 3600);
    const active = side.gw.bans.stats().active;
    console.error(`${side.label}: ${active} active bans, added in ${(performance.now() - t0).toFixed(0)} ms`);
    if (active !== BANS + extra.length) throw new Error(`${side.label}: expected ${BANS + extra.length} active bans, got ${active}`);
  };
  const tag = `${CONCURRENCY} clients`;
  try {
    // Full sessions: 100,000 bans vs none (no ban holds a client: every session is delivered).
    {
      const none = await start(`gateway full, no bans, ${tag}`, FULL_POLICIES);
      const banned = await start(`gateway full, ${BANS.toLocaleString('en-US')} bans, ${tag}`, FULL_POLICIES);
      banAll(banned);
      const r = await alternate(clients, 'full', none, banned, checkFull);
      figures.push(...pairFigures(`full sessions, ${BANS.toLocaleString('en-US')} active bans vs none, ${tag}`, r, '≥ 0.95×'));
      await stopAll();
    }

    // Connect-only: every client refused, by a ban (found among 100,001) or by a policy (above: 0).
    {
      const byPolicy = await start(
        `gateway connect-only, refused by a policy, ${tag}`,
        `  - { name: none-allowed, on: connect, series: connections, mask: 32, windows: [0, 3], above: 0, action: tempfail }`,
      );
      const byBan = await start(`gateway connect-only, refused by a ban, ${tag}`, FULL_POLICIES);
      banAll(byBan, [CLIENTS_PREFIX]);
      const allRefused = (what: string, r: RunResult): void => {
        checkConnect(what, r);
        if (r.accepted > 0) throw new Error(`${what}: ${r.accepted} connections accepted, expected every one refused`);
      };
      const r = await alternate(clients, 'connect', byPolicy, byBan, allRefused);
      figures.push(...pairFigures(`connect-only refused, banned client vs policy, ${tag}`, r, '≥ 1×'));
      console.error(`refused by a ban: ${byBan.gw.bans.stats().refused} connections counted as refused by bans`);
      await stopAll();
    }

    // Full sessions, replicate: cluster vs none, thresholds far above the load.
    const redis = await startRedisServer();
    if (redis) {
      try {
        const mem = await start(`gateway full, replicate: none, ${tag}`, FULL_POLICIES);
        const cluster = await start(`gateway full, replicate: cluster (redis :${redis.port}), ${tag}`, FULL_POLICIES, { redisPort: redis.port });
        const r = await alternate(clients, 'full', mem, cluster, checkFull);
        const st = cluster.gw.store.status();
        const holding = cluster.gw.store instanceof RoutingStore ? cluster.gw.store.redis.holdingReads : 0;
        console.error(`replicate: cluster: state ${st.state}, errors ${st.errors}, counts read again near a threshold or past max_pending/10 own adds: ${holding}`);
        if (st.errors > 0) console.error('replicate: cluster: WARNING the store had errors during the run; the figure includes local fallback');
        figures.push(...pairFigures(`full sessions, replicate: cluster vs memory, near-threshold reads on, ${tag}`, r, '≥ 0.7×'));
        await stopAll();
      } finally {
        await redis.stop();
      }
    }
  } finally {
    await stopAll();
    clients.close();
    backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}
