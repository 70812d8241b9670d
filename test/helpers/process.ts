/** A child process whose stdout is pino JSON lines: collected, and waited for with a bounded loop. */
import type { ChildProcess } from 'node:child_process';

export class Proc {
  lines: Array<Record<string, unknown>> = [];
  stderr = '';
  exit: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const p of parts) if (p.trim()) this.lines.push(JSON.parse(p) as Record<string, unknown>);
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exit = new Promise((r) => child.on('exit', (code) => r(code)));
  }
  async waitFor(pred: (l: Record<string, unknown>) => boolean, ms = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`log line not seen; stderr: ${this.stderr}; lines: ${JSON.stringify(this.lines.slice(-5))}`);
  }
}
