import type { Clock } from './clock.js';
import { CidrSeries } from './cidr-series.js';
import { StringSeries } from './string-series.js';
import { SeriesDefinitionError } from '../errors.js';
import { SERIES_TYPES, type SeriesDefinition } from './types.js';

export type AuditSeries = CidrSeries | StringSeries;

/** Momentum's `define`: builds an in-process series for a definition. */
export function defineSeries(def: SeriesDefinition, clock: Clock): AuditSeries {
  if (!/^[A-Za-z0-9_.:,-]{1,128}$/.test(def.name)) {
    throw new SeriesDefinitionError(`series name "${def.name}" must be 1-128 letters, digits, _ . : , -`);
  }
  if (!SERIES_TYPES.includes(def.type)) {
    throw new SeriesDefinitionError(`series "${def.name}": type must be one of ${SERIES_TYPES.join(', ')}`);
  }
  return def.type === 'string' ? new StringSeries(def, clock) : new CidrSeries(def, clock);
}

export { CidrSeries, StringSeries };
export * from './types.js';
export * from './clock.js';
