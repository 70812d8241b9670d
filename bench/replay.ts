/**
 * Replay and journal benchmarks (`npm run bench -- --only replay`):
 *
 * - replay events/s of a default-config journal (config/auditgate.yaml), against reading and
 *   checking the same journal without replaying it (the baseline: the part no config changes).
 *   The journal is written first by the default config's own engine on a virtual clock:
 *   SESSIONS sessions from 4,096 IPv4 and 1,024 IPv6 clients, every tenth with an unknown
 *   recipient the backend refuses, so the lines are what a gateway writes.
 * - full SMTP sessions/s through the gateway with `journal:` on, against the same gateway with
 *   it off, measured in alternation (ROUNDS rounds, the median ratio; bench/gateway-kit.ts machinery).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfigText } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import { startGateway, type Gateway } from '../src/gateway.js';
import { formatLine } from '../src/journal/line.js';
import { journalStreams, readJournal, type ReadStats } from '../src/journal/reader.js';
import { SessionDriver } from '../src/replay/driver.js';
import { replay } from '../src/replay/replay.js';
import { virtualEngine } from '../src/replay/virtual-engine.js';
import { parseClientAddress } from '../src/series/address.js';
import { backendProcess } from './responder.js';
import { checkFull, clientProcess, FULL_POLICIES, gatewayYaml, measured, median, rate } from './gateway-kit.js';
import type { Figure } from './harness.js';

const SESSIONS = 60_000;
/** Virtual time between session starts: 300 sessions/s. */
const SESSION_GAP_MS = 3;
const REPLAYS = 5;
const ROUNDS = 5;
const CONCURRENCY = 64;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function client(i: number): string {
  if (i % 5 === 4) {
    const n = i % 1024;
    return `2001:db8:${(n >> 4).toString(16)}:${(n & 15).toString(16)}::${((i % 7) + 1).toString(16)}`;
  }
  const n = i % 4096;
  return `198.18.${n >>> 8}.${n & 255}`;
}

/** A default-config journal of SESSIONS sessions, written by that config's engine; returns its lines. */
export async function writeJournal(config: Config, file: string): Promise<number> {
  const start = Date.UTC(2030, 0, 1);
  const out: string[] = [];
  const ve = virtualEngine(config, start, (l) => out.push(formatLine(l)));
  for (let i = 0; i < SESSIONS; i++) {
    ve.clock.set(start + i * SESSION_GAP_MS);
    const d = new SessionDriver(ve.engine, 'smtp', `b${i.toString(16).padStart(10, '0')}`, parseClientAddress(client(i)));
    await d.stage('connect');
    d.facts({ helo: `mx${i % 97}.example.net` });
    await d.stage('helo');
    const facts = { helo: `mx${i % 97}.example.net`, mailFrom: `s${i % 311}@d${i % 53}.example.org` };
    d.facts(facts);
    await d.stage('mail');
    if (i % 10 === 0) {
      d.facts({ ...facts, rcpt: `unknown${i}@example.com` });
      await d.stage('rcpt');
      await d.rcptRejected();
    }
    d.facts({ ...facts, rcpt: `u${i % 1000}@example.com` });
    await d.stage('rcpt');
    d.facts(facts);
    await d.stage('data');
    d.delivered();
    d.close();
  }
  await new Promise((r) => setImmediate(r));
  fs.writeFileSync(file, out.join(''));
  return out.length;
}

async function readOnly(streams: string[][]): Promise<number> {
  const stats: ReadStats = { files: 0, lines: 0, skipped: 0, outside: 0 };
  let n = 0;
  for await (const batch of readJournal(streams, { onProblem: () => undefined }, stats)) n += batch.length;
  return n;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

async function replayFigure(dir: string): Promise<Figure> {
  const config = loadConfig(path.join(ROOT, 'config/auditgate.yaml'));
  const file = path.join(dir, '2030-01-01.jsonl');
  const lines = await writeJournal(config, file);
  console.error(`replay: a default-config journal of ${lines.toLocaleString('en-US')} lines (${SESSIONS.toLocaleString('en-US')} sessions), ${(fs.statSync(file).size / 1e6).toFixed(0)} MB`);
  const streams = await journalStreams([file]);
  const reads: number[] = [];
  const replays: number[] = [];
  for (let r = 0; r < REPLAYS; r++) {
    const read = await timed(() => readOnly(streams));
    reads.push(read.value / (read.ms / 1000));
    const rep = await timed(() => replay({ candidate: config, streams, onProblem: () => undefined }));
    if (rep.value.events !== lines || rep.value.decisions.changed !== 0) {
      throw new Error(`replay bench: ${rep.value.events} events replayed of ${lines}, ${rep.value.decisions.changed} decisions changed (the recording config must reproduce them all)`);
    }
    replays.push(rep.value.events / (rep.ms / 1000));
    console.error(`replay round ${r + 1}: read and check ${reads.at(-1)!.toFixed(0)} lines/s, replay ${replays.at(-1)!.toFixed(0)} events/s`);
  }
  const value = median(replays);
  const baseline = median(reads);
  return { name: 'replay, default config, events/s (baseline: reading the journal only)', value, unit: 'events/s', baseline, ratio: value / baseline, target: '≥ 200,000 events/s' };
}

async function journalCostFigures(dir: string): Promise<Figure[]> {
  const clients = clientProcess();
  const backend = await backendProcess(true);
  const gateways: Gateway[] = [];
  try {
    const yaml = gatewayYaml(backend.port, dir, FULL_POLICIES);
    const off = await startGateway({ config: parseConfigText(yaml, 'bench-journal-off.yaml') });
    gateways.push(off);
    const on = await startGateway({ config: parseConfigText(`${yaml}journal: { dir: ${JSON.stringify(path.join(dir, 'journal'))} }\n`, 'bench-journal-on.yaml') });
    gateways.push(on);
    const spec = { concurrency: CONCURRENCY, warmupMs: 500, durationMs: 2_000, mode: 'full' as const, proxy: true };
    const offRates: number[] = [];
    const onRates: number[] = [];
    const ratios: number[] = [];
    const cpu = { off: [] as number[], on: [] as number[] };
    /** One phase against gateway `g`: its result, and this process's CPU µs per message the backend accepted (warm-up included on both sides). */
    const phase = async (what: 'off' | 'on', g: Gateway, round: number) => {
      const m0 = g.relay.stats().messages;
      const c0 = process.cpuUsage();
      const r = await measured(`round ${round}: gateway full, journal ${what}`, clients, { ...spec, port: g.smtpAddresses()[0]!.port });
      const c = process.cpuUsage(c0);
      checkFull(`gateway (journal ${what})`, r);
      cpu[what].push((c.user + c.system) / Math.max(1, g.relay.stats().messages - m0));
      return r;
    };
    for (let round = 1; round <= ROUNDS; round++) {
      const a = await phase('off', off, round);
      const b = await phase('on', on, round);
      offRates.push(rate(a));
      onRates.push(rate(b));
      ratios.push(rate(b) / rate(a));
    }
    const st = on.journalStats()!;
    console.error(`journal on: ${st.lines} lines written, ${st.dropped} dropped, ${st.writeErrors} write errors; ratios by round ${ratios.map((x) => x.toFixed(2)).join(', ')}`);
    console.error(`CPU µs per session, journal off: ${cpu.off.map((x) => x.toFixed(0)).join(', ')}; on: ${cpu.on.map((x) => x.toFixed(0)).join(', ')}`);
    if (st.lines === 0) throw new Error('journal bench: the journal wrote nothing');
    return [
      {
        name: `full sessions, 1 KiB, ${CONCURRENCY} clients, journal on (baseline: journal off)`,
        value: median(onRates),
        unit: 'sessions/s',
        baseline: median(offRates),
        ratio: median(ratios),
        target: '≥ 0.9×',
      },
      {
        // throughput swings with the other load on a shared machine; CPU per session much less
        name: `gateway CPU per full session, journal on (baseline: journal off)`,
        value: median(cpu.on),
        unit: 'µs/session',
        baseline: median(cpu.off),
        ratio: median(cpu.on) / median(cpu.off),
        target: '≤ 1.11× (0.9× throughput)',
      },
    ];
  } finally {
    for (const g of gateways) await g.close(2000);
    clients.close();
    backend.close();
  }
}

export async function benchReplay(): Promise<Figure[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-bench-replay-'));
  try {
    return [await replayFigure(dir), ...(await journalCostFigures(dir))];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
