import type { Clock } from './clock.js';
import { CidrSeries } from './cidr-series.js';
import { StringSeries } from './string-series.js';
import { DistinctCidrSeries } from './distinct-cidr-series.js';
import { DistinctStringSeries } from './distinct-string-series.js';
import { SeriesDefinitionError } from '../errors.js';
import { SERIES_TYPES, type SeriesDefinition } from './types.js';

export type AuditSeries = CidrSeries | StringSeries;
/** A series with `distinct: true`: adds carry values, counts are distinct values. */
export type DistinctAuditSeries = DistinctCidrSeries | DistinctStringSeries;

export function isDistinct(s: AuditSeries): s is DistinctAuditSeries {
  return s instanceof DistinctCidrSeries || s instanceof DistinctStringSeries;
}

/** Momentum's `define`: builds an in-process series for a definition. */
export function defineSeries(def: SeriesDefinition, clock: Clock): AuditSeries {
  if (!/^[A-Za-z0-9_.:,-]{1,128}$/.test(def.name)) {
    throw new SeriesDefinitionError(`series name "${def.name}" must be 1-128 letters, digits, _ . : , -`);
  }
  if (!SERIES_TYPES.includes(def.type)) {
    throw new SeriesDefinitionError(`series "${def.name}": type must be one of ${SERIES_TYPES.join(', ')}`);
  }
  if (def.options?.distinct) return def.type === 'string' ? new DistinctStringSeries(def, clock) : new DistinctCidrSeries(def, clock);
  return def.type === 'string' ? new StringSeries(def, clock) : new CidrSeries(def, clock);
}

export { CidrSeries, StringSeries, DistinctCidrSeries, DistinctStringSeries };
export * from './types.js';
export * from './clock.js';
