/** Named series, built from definitions; the in-process home of every series. */
import type { Clock } from './clock.js';
import { defineSeries, type AuditSeries } from './index.js';
import { SeriesDefinitionError, UnknownSeriesError } from '../errors.js';
import type { SeriesDefinition, SeriesSnapshot } from './types.js';

export class SeriesRegistry {
  private readonly series = new Map<string, AuditSeries>();
  constructor(readonly clock: Clock) {}

  /**
   * Defines a series. Redefining a name with the same type, interval, windows, store_prefix
   * and max_keys keeps the existing counts (a config reload); a changed shape replaces it.
   */
  define(def: SeriesDefinition): AuditSeries {
    const existing = this.series.get(def.name);
    if (existing && sameShape(existing, def)) return existing;
    const s = defineSeries(def, this.clock);
    this.series.set(def.name, s);
    return s;
  }

  get(name: string): AuditSeries {
    const s = this.series.get(name);
    if (!s) throw new UnknownSeriesError(name);
    return s;
  }

  has(name: string): boolean {
    return this.series.has(name);
  }

  delete(name: string): boolean {
    return this.series.delete(name);
  }

  list(): AuditSeries[] {
    return [...this.series.values()];
  }

  /** Keeps only the named series (after a reload drops some). */
  retain(names: Iterable<string>): void {
    const keep = new Set(names);
    for (const n of [...this.series.keys()]) if (!keep.has(n)) this.series.delete(n);
  }

  snapshot(name: string): SeriesSnapshot {
    return this.get(name).snapshot();
  }

  restore(snap: SeriesSnapshot): number {
    const s = this.series.get(snap.name);
    if (!s) throw new SeriesDefinitionError(`snapshot for undefined series "${snap.name}"`);
    return s.restore(snap);
  }
}

function sameShape(s: AuditSeries, def: SeriesDefinition): boolean {
  const o = def.options ?? {};
  return (
    s.type === def.type &&
    s.interval === def.interval &&
    s.windows === def.windows &&
    (s.options.store_prefix ?? null) === (o.store_prefix ?? null) &&
    (s.options.max_keys ?? null) === (o.max_keys ?? null) &&
    (s.options.distinct ?? false) === (o.distinct ?? false) &&
    (s.options.wide ?? false) === (o.wide ?? false)
  );
  // `levels` only decide which masks are O(1); counts at every mask stay exact, so a reload
  // that adds a policy mask keeps the series (and its counts) rather than starting it again.
}
