/** The default store: counts live in this process, in the series registry. */
import type { SeriesRegistry } from '../series/registry.js';
import { CidrSeries } from '../series/cidr-series.js';
import { DistinctCidrSeries, isDistinct, type AuditSeries } from '../series/index.js';
import { notDistinct } from '../series/distinct-series.js';
import type { TopEntry, TopOptions } from '../series/types.js';
import type { AddOp, CountQuery, ImmediateStore, SeriesStore } from './types.js';

export class MemoryStore implements SeriesStore, ImmediateStore {
  readonly kind = 'memory';
  constructor(readonly registry: SeriesRegistry) {}

  async add(series: string, key: string, count = 1): Promise<void> {
    this.registry.get(series).add(key, count);
  }

  async addMany(ops: readonly AddOp[]): Promise<void> {
    this.addManyNow(ops);
  }

  addManyNow(ops: readonly AddOp[]): void {
    for (const op of ops) applyAdd(this.registry.get(op.series), op);
  }

  async count(series: string, key: string, startv = 0, endv = startv): Promise<number> {
    return this.registry.get(series).count(key, startv, endv);
  }

  async countMany(queries: readonly CountQuery[]): Promise<number[]> {
    return this.countManyNow(queries);
  }

  countManyNow(queries: readonly CountQuery[]): number[] {
    return queries.map((q) => {
      const s = this.registry.get(q.series);
      if (q.address && s instanceof CidrSeries) return s.countAddress(q.address, q.mask ?? 128, q.startv, q.endv);
      return s.count(q.key, q.startv, q.endv);
    });
  }

  async removeItem(series: string, key: string): Promise<number> {
    return this.registry.get(series).removeItem(key);
  }

  async top(series: string, opts?: TopOptions): Promise<TopEntry[]> {
    const s = this.registry.get(series);
    return s instanceof CidrSeries ? s.topAsync(opts) : s.top(opts);
  }

  async close(): Promise<void> {}
}

/**
 * Applies one add to an in-process series: its count, or for a distinct series its value (a
 * value for any other series, or a distinct add without one, is an InvalidValueError).
 */
export function applyAdd(s: AuditSeries, op: AddOp): void {
  if (op.value === undefined) {
    if (op.address && s instanceof CidrSeries) s.addAddress(op.address, op.count);
    else s.add(op.key, op.count);
    return;
  }
  if (!isDistinct(s)) throw notDistinct(s.name);
  if (op.address && s instanceof DistinctCidrSeries) s.addAddressValue(op.address, op.value);
  else s.addValue(op.key, op.value);
}
