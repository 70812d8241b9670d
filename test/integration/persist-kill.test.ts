/**
 * Crash safety of `persist: true`: a real node process saving every 0.2 s is SIGKILLed while
 * it adds; the state it leaves must load cleanly and hold everything but the last moments.
 *
 * The child (test/fixtures/persist-child.ts) is compiled with the project's tsc into a temp dir
 * (with node_modules linked next to it), so the test does not depend on dist/ being built.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/series/clock.js';
import { SeriesRegistry } from '../../src/series/registry.js';
import type { CidrSeries, StringSeries } from '../../src/series/index.js';
import { SeriesPersister } from '../../src/history/persister.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const PERSIST_INTERVAL_MS = 200; // the child's intervalSec: 0.2
const PER_TICK = 20; // adds per child tick (see the fixture)
const BULK = 200_000;
/** Time a save may take plus timer and scheduling jitter on a loaded machine. */
const SLACK_MS = 600;

let tmp: string;
let childJs: string;
let child: ChildProcess | undefined;

/** Same keys as the fixture's eventKey. */
function eventKey(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-persist-kill-'));
  const build = path.join(tmp, 'build');
  const tsconfig = path.join(tmp, 'tsconfig.json');
  fs.writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(repo, 'tsconfig.json'),
      compilerOptions: {
        noEmit: false,
        outDir: build,
        rootDir: repo,
        sourceMap: false,
        typeRoots: [path.join(repo, 'node_modules', '@types')],
      },
      files: [path.join(repo, 'test', 'fixtures', 'persist-child.ts')],
      include: [],
    }),
  );
  childJs = path.join(build, 'test', 'fixtures', 'persist-child.js');
  try {
    execFileSync(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', tsconfig], {
      stdio: 'pipe',
      timeout: 120_000,
    });
  } catch (e) {
    // type errors elsewhere still emit JavaScript; only a missing output is fatal
    if (!fs.existsSync(childJs)) {
      const out = (e as { stdout?: Buffer }).stdout?.toString() ?? String(e);
      throw new Error(`could not compile the persist child:\n${out}`);
    }
  }
  fs.writeFileSync(path.join(build, 'package.json'), '{"type":"module"}\n');
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(build, 'node_modules'), 'dir');
}, 120_000);

afterAll(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('persist: SIGKILL mid-load', () => {
  it('loses at most the adds of about one persist period, and the file is always loadable', async () => {
    const stateDir = path.join(tmp, 'state');
    const proc = spawn(process.execPath, [childJs, stateDir, String(BULK)], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const samples: Array<{ added: number; at: number }> = [];
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.on('close', (code, signal) => resolve({ code, signal })),
    );
    let exited = false;
    void closed.then(() => (exited = true));
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /^added (\d+) (\d+)$/.exec(line);
      if (m) samples.push({ added: Number(m[1]), at: Number(m[2]) });
    });

    // let it run ~2.5 s (a dozen saves), then kill it without warning, preferably mid-save
    const deadline = Date.now() + 20_000;
    while (!exited && Date.now() < deadline) {
      const first = samples[0];
      const last = samples[samples.length - 1];
      if (first && last && last.at - first.at >= 2500) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(exited, `child exited early: ${stderr}`).toBe(false);
    // aim the kill at a save in progress: as soon as a temp file shows up (or after 3 s anyway)
    const aimUntil = Date.now() + 3000;
    while (Date.now() < aimUntil && !fs.readdirSync(stateDir).some((f) => f.includes('.tmp-'))) {
      await new Promise((r) => setImmediate(r));
    }
    proc.kill('SIGKILL');
    const { signal } = await closed; // 'close': every line it printed has been read
    expect(signal).toBe('SIGKILL');
    expect(stderr).toBe('');

    const final = samples[samples.length - 1]!;
    const before = (t: number) => samples.filter((s) => s.at <= t).reduce((m, s) => Math.max(m, s.added), 0);
    const mustHave = before(final.at - PERSIST_INTERVAL_MS - SLACK_MS);
    expect(mustHave).toBeGreaterThan(final.added / 2); // the run was long enough for the bound to mean something

    // only our files (and perhaps the temp file of the interrupted save) are there
    for (const f of fs.readdirSync(stateDir)) expect(f).toMatch(/^(bulk|events)\.json(\.tmp-\d+-\d+)?$/);

    const registry = new SeriesRegistry(systemClock);
    const events = registry.define({ name: 'events', type: 'cidr', interval: 86_400, windows: 2 }) as CidrSeries;
    const bulk = registry.define({ name: 'bulk', type: 'string', interval: 86_400, windows: 2 }) as StringSeries;
    const persister = new SeriesPersister({
      registry,
      stateDir,
      intervalSec: 5,
      logger: pino({ level: 'silent' }),
      clock: systemClock,
      seriesNames: () => ['bulk', 'events'],
    });
    const { restored, problems } = persister.loadAll();
    expect(problems).toEqual([]);
    expect(fs.readdirSync(stateDir).sort()).toEqual(['bulk.json', 'events.json']);
    expect(restored.bulk).toBe(BULK);
    expect(bulk.total(0, 1)).toBe(BULK);

    const r = events.size();
    expect(restored.events).toBe(r);
    expect(r).toBeGreaterThan(0);
    expect(r).toBeLessThanOrEqual(final.added + PER_TICK); // at most one tick it had no time to report
    expect(r).toBeGreaterThanOrEqual(mustHave); // lost ≤ what was added in one period (+ slack)
    // a save is one instant: the restored keys are exactly the first r adds
    expect(events.count('0.0.0.0/0', 0, 1)).toBe(r);
    for (const i of [0, Math.floor(r / 2), r - 1]) expect(events.count(eventKey(i), 0, 1)).toBe(1);
    expect(events.count(eventKey(r), 0, 1)).toBe(0);
  }, 60_000);
});
