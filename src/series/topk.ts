import type { TopEntry } from './types.js';

/** Keeps the `limit` heaviest entries seen (a bounded min-heap); ties broken by key ascending. */
export class TopK {
  private readonly heap: TopEntry[] = [];
  constructor(private readonly limit: number) {}

  /** True when `a` ranks below `b` (smaller count, or equal count and larger key). */
  private static below(a: TopEntry, b: TopEntry): boolean {
    return a.count < b.count || (a.count === b.count && a.key > b.key);
  }

  /** Cheap pre-check so callers can skip formatting keys that cannot enter. */
  wouldAccept(count: number): boolean {
    if (count <= 0 || this.limit <= 0) return false;
    if (this.heap.length < this.limit) return true;
    return count >= this.heap[0]!.count;
  }

  offer(key: string, count: number): void {
    if (!this.wouldAccept(count)) return;
    const e = { key, count };
    const h = this.heap;
    if (h.length < this.limit) {
      h.push(e);
      let i = h.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!TopK.below(h[i]!, h[p]!)) break;
        [h[i], h[p]] = [h[p]!, h[i]!];
        i = p;
      }
      return;
    }
    if (!TopK.below(h[0]!, e)) return;
    h[0] = e;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && TopK.below(h[l]!, h[m]!)) m = l;
      if (r < h.length && TopK.below(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }

  result(): TopEntry[] {
    return [...this.heap].sort((a, b) => (b.count - a.count) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}
