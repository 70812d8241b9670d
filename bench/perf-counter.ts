/** The hardware instruction counter (perf stat), where the machine has one: bench/cost.ts's first choice. */
import { spawn, spawnSync } from 'node:child_process';

/** perf stat on one process until stop(); resolves with the instruction count. */
export function perfStat(pid: number): { stop(): Promise<number> } {
  const perf = spawn('perf', ['stat', '-x,', '-e', 'instructions', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  perf.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((r) => perf.once('exit', () => r()));
  return {
    stop: async () => {
      perf.kill('SIGINT');
      await exited;
      const line = err.split('\n').find((l) => l.includes('instructions'));
      const n = line ? Number(line.split(',')[0]) : NaN;
      if (!Number.isFinite(n) || n <= 0) throw new Error(`perf stat gave no instruction count: ${err.trim().slice(0, 300)}`);
      return n;
    },
  };
}

export function perfAvailable(): boolean {
  const r = spawnSync('perf', ['stat', '-x,', '-e', 'instructions', 'true'], { encoding: 'utf8' });
  return !r.error && r.status === 0 && /instructions/.test(r.stderr) && !/not supported|not counted/.test(r.stderr);
}
