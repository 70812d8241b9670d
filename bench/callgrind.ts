/**
 * The cost suite's callgrind fallback (bench/cost.ts), for machines where `perf stat -e
 * instructions` has no hardware counter: the settings of a counted window, the node and valgrind
 * flags that make it repeatable, callgrind_control, and reading a dump's total and the V8
 * compile and GC costs that are left out of the figure.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** Full sessions in the measured window, per row. */
export const CG_SESSIONS = 800;
/**
 * Sessions before it, with instrumentation off (valgrind runs the code uncounted, some 5× faster
 * than counted), so that every source address has been seen and V8 has tiered most code up...
 */
export const CG_WARMUP_SESSIONS = 8_000;
/**
 * ...then batches of CG_QUIET_BATCH more until one runs with at most CG_QUIET_COMPILES optimizing
 * compiles (counted from --trace-opt), at most CG_MAX_EXTRA_WARMUP sessions in all: how long V8
 * takes to settle differs by row (smtp-server alone still compiled 8–15% of a window's Ir after
 * 7,000 sessions; each such window had to be measured again). Natively, with --trace-opt, the
 * relaying gateway still compiles ~15 functions between sessions 5,000 and 10,000, none after.
 */
export const CG_QUIET_BATCH = 1_000;
export const CG_QUIET_COMPILES = 1;
export const CG_MAX_EXTRA_WARMUP = 12_000;
export const CG_CONCURRENCY = 16;
/** Idle pause before the window and before the dump, so the server is done with the sessions before / in it. */
export const CG_SETTLE_MS = 300;
/** Spoilt windows (see measureCallgrind) are measured again, up to this many times in all. */
export const CG_ATTEMPTS = 4;
/**
 * A window where the optimizing compiler took more than this share of the Ir is measured again:
 * part of it ran code still on its way to being optimized. (The responder recompiles one small
 * function every window, under 1%.)
 */
export const CG_MAX_COMPILE = 0.02;
/**
 * The gateway rows' series interval under callgrind (the bench's is 60 s): a row takes minutes
 * under valgrind on a busy machine, longer than 60 s windows, and a rotation (with the deopts after
 * the first one) would land in some counted windows and not others. With 3600 s none falls in a
 * row unless it crosses the hour (then that window is measured again). A rotation at native speed
 * comes once in some 10^5 sessions: leaving it out changes the figure by nothing measurable.
 */
export const CG_SERIES_INTERVAL_S = 3600;
/** A window where sweeping (outside GC pauses) took more than this share of the total is measured again: it follows a major GC just before. */
export const CG_MAX_SWEEPING = 0.002;
/**
 * Node/V8 flags for the server under callgrind, all for repeatability:
 *   --single-threaded          V8 compiles and collects on the main thread only, not in background
 *                              tasks whose timing (and so how much work they do, and when optimized
 *                              code arrives) varies from run to run. (--v8-pool-size=0 would not do:
 *                              0 means "pick a size", not "no threads".)
 *   --min/max-semi-space-size=1  a fixed 1 MB young generation (V8 otherwise sizes it as it sees
 *                              fit): minor GCs every ~15 sessions, at the same pace in every run
 *   --no-minor-gc-task         minor GCs when the young generation is full, not in a task that runs
 *                              whenever the event loop gets to it (with a different set of live objects)
 *   --no-allocation-site-pretenuring  no pretenuring decisions taken from which objects happened to
 *                              survive a minor GC: with them the same code settled at 227k or 281k
 *                              Ir per responder session, run to run
 *   --no-incremental-marking   a major GC is one atomic pause, which the window can recognize
 *   --no-memory-reducer        no timer-driven GCs while the server idles between phases
 *   --trace-opt                a line per optimizing compile on stdout, for the warm-up to tell when
 *                              V8 has settled (printed uncounted, or in a window measured again)
 */
export const CG_NODE_FLAGS = [
  '--single-threaded',
  '--min-semi-space-size=1',
  '--max-semi-space-size=1',
  '--no-minor-gc-task',
  '--no-allocation-site-pretenuring',
  '--no-incremental-marking',
  '--no-memory-reducer',
  '--trace-opt',
];
/** --smc-check=all-non-file: V8 writes and patches machine code in anonymous mappings; valgrind must notice. */
export const CG_VALGRIND_FLAGS = ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file'];
/** V8's optimizing compiler (TurboFan, OSR included): every optimized compile runs inside this function. */
const CG_OPTIMIZING_COMPILER = 'v8::internal::(anonymous namespace)::GetOrCompileOptimized(';
/** Every garbage collection pause, minor or major, runs inside this function. */
const CG_GC = 'v8::internal::Heap::CollectGarbage(';
/** A major GC's pause (with --no-incremental-marking, all of its marking). */
const CG_MAJOR_GC = 'v8::internal::Heap::MarkCompact(';
/** Old-space sweeping: inside a major GC, or lazily on allocation after one. */
const CG_SWEEPER = 'v8::internal::Sweeper::';

/** "valgrind-3.19.0" when valgrind and callgrind_control are on PATH, else undefined. */
export function callgrindVersion(): string | undefined {
  const v = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  const c = spawnSync('callgrind_control', ['--version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0 || c.error) return undefined;
  return v.stdout.trim();
}

/** callgrind_control with an explicit pid (without one it would act on every callgrind run on the machine). */
export function callgrindControl(pid: number, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('callgrind_control', [...args, String(pid)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.once('error', reject);
    p.once('exit', (code) =>
      code === 0 && /\bOK\b/.test(out) ? resolve() : reject(new Error(`callgrind_control ${args.join(' ')} ${pid} failed (${code}): ${out.trim().slice(0, 300)}`)),
    );
  });
}

export interface DumpCounts {
  /** Ir of the whole dump ("totals:" line). */
  total: number;
  /** Inclusive Ir of the optimizing compiler. */
  compile: number;
  /** Inclusive Ir of garbage collection pauses. */
  gc: number;
  /** Calls to a major GC's pause. */
  majorGcs: number;
  /** Inclusive Ir of sweeping entered from outside the sweeper (lazy sweeping after a major GC, or inside one). */
  sweeping: number;
  /** Whether the dump names V8's own functions at all (not so for a stripped node binary). */
  symbols: boolean;
}

/**
 * Reads a callgrind dump: its total, and the inclusive cost of some V8 functions, summed from the
 * inclusive costs callgrind writes after each "calls=" line (the call named by the "cfn=" before
 * it, made from the function of the last "fn="). Names are compressed: "(id) name" the first
 * time, "(id)" after.
 */
export function readCallgrindDump(text: string): DumpCounts {
  const m = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text);
  const total = m ? Number(m[1]) : NaN;
  if (!Number.isFinite(total) || total <= 0) throw new Error('callgrind dump without an Ir total');
  const c: DumpCounts = { total, compile: 0, gc: 0, majorGcs: 0, sweeping: 0, symbols: false };
  const names = new Map<string, string>();
  let caller = '';
  let callee = '';
  let calls = 0;
  let afterCalls = false;
  for (const line of text.split('\n')) {
    if (afterCalls) {
      afterCalls = false;
      const ir = Number(line.trim().split(/\s+/)[1] ?? 0) || 0;
      if (callee.startsWith(CG_OPTIMIZING_COMPILER)) c.compile += ir;
      else if (callee.startsWith(CG_GC) && !caller.startsWith(CG_GC)) c.gc += ir;
      else if (callee.startsWith(CG_MAJOR_GC)) c.majorGcs += calls;
      else if (callee.startsWith(CG_SWEEPER) && !caller.startsWith(CG_SWEEPER)) c.sweeping += ir;
      continue;
    }
    if (line.startsWith('calls=')) {
      calls = Number(line.slice(6).split(' ')[0]) || 0;
      afterCalls = true;
      continue;
    }
    const f = /^(c?)fn=\((\d+)\)(?: (.*))?$/.exec(line);
    if (!f) continue;
    if (f[3] !== undefined) names.set(f[2]!, f[3]);
    const name = f[3] ?? names.get(f[2]!) ?? '';
    if (!c.symbols && name.startsWith('v8::internal::')) c.symbols = true;
    if (f[1] === 'c') callee = name;
    else caller = name;
  }
  if (c.compile + c.gc > total) throw new Error(`callgrind dump: compile ${c.compile} + GC ${c.gc} Ir exceed the total ${total}`);
  return c;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until callgrind has written the whole dump (its last line is "totals: …") and returns it. */
export async function readDumpFile(file: string, ms: number): Promise<string> {
  for (const t0 = Date.now(); ; await sleep(50)) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (/^totals:/m.test(text)) return text;
    if (Date.now() - t0 > ms) throw new Error(`callgrind wrote no complete ${file}`);
  }
}

/** V8's --trace-opt line for a finished optimizing compile. */
const TRACE_OPT_DONE = '[completed compiling ';

/**
 * Counts --trace-opt's finished compiles in a server's stdout, passing every other line on to
 * `forward`; returns the count so far.
 */
export function countCompiles(stdout: NodeJS.ReadableStream, forward: NodeJS.WritableStream): () => number {
  let n = 0;
  let rest = '';
  stdout.setEncoding('utf8');
  stdout.on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith(TRACE_OPT_DONE)) n++;
      else if (!line.startsWith('[')) forward.write(`${line}\n`);
    }
  });
  return () => n;
}
