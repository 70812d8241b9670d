/** Benchmark helpers: figures are reported as ratios against a baseline measured in the same run. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  /** Cost relative to the baseline (ns/op ÷ baseline ns/op, bytes ÷ baseline bytes), or throughput ratio for rates. */
  ratio: number;
  target?: string;
}

export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

/** Median ns per op of `fn(i)` over `rounds` rounds of `n` calls. */
export function nsPerOp(n: number, rounds: number, fn: (i: number) => unknown): number {
  let sink = 0;
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      if (fn(i) === sink) sink++;
    }
    samples.push(Number(process.hrtime.bigint() - t0) / n);
  }
  samples.sort((a, b) => a - b);
  if (sink < 0) console.log(sink);
  return samples[Math.floor(samples.length / 2)]!;
}

export function heapBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Deterministic PRNG (mulberry32) so every run measures the same keys. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function report(figures: Figure[], json: boolean): void {
  if (json) {
    for (const f of figures) console.log(JSON.stringify(f));
    return;
  }
  const rows = figures.map((f) => [
    f.name,
    `${fmt(f.value)} ${f.unit}`,
    `${fmt(f.baseline)} ${f.unit}`,
    `${f.ratio.toFixed(2)}×`,
    f.target ?? '',
  ]);
  const head = ['figure', 'value', 'baseline', 'ratio', 'target'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

function fmt(n: number): string {
  if (n >= 1000) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(1);
}
