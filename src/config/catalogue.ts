/**
 * The series a config defines, derived once per loaded config: every definition (the config's
 * series, then the built-in monitor series) with the aggregate levels its policies' masks ask
 * for, the replicated ones with the masks Redis keeps, the monitor series each event adds to,
 * and the type and interval of each name. The gateway, the recorder, the policy compiler and the
 * store all read this one catalogue instead of deriving their own.
 *
 *   seriesCatalogue(config)        → the catalogue (the same object for the same config)
 *   monitorSeries(config.monitors) → the built-in monitor series alone (config checks)
 */
import { DEFAULT_LEVELS, DEFAULT_MAX_KEYS, type SeriesDefinition, type SeriesType } from '../series/types.js';
import { type ReplicatedSeries, leafBitsOf } from '../store/redis-layout.js';
import type { Config, MonitorConfig, SeriesConfig } from './types.js';
import { MONITOR_SERIES_BASES, type MonitorEvent } from './vocabulary.js';

export interface SeriesCatalogue {
  /** Every series the gateway defines: the config's, then the monitors'; cidr types keep their policies' masks as levels. */
  readonly definitions: readonly SeriesDefinition[];
  /** Type and interval of every defined series by name (the session gauges are not series); distinct: counts distinct values. */
  readonly types: ReadonlyMap<string, { type: SeriesType; interval: number; distinct: boolean }>;
  /** The monitor series an event adds to, both families, in definition order. */
  readonly monitors: Readonly<Record<MonitorEvent, readonly string[]>>;
  /** The series with replicate: cluster | manager, with the aggregate masks Redis keeps. */
  readonly replicated: readonly ReplicatedSeries[];
  /** Names of the series with persist: true / serialize: true. */
  readonly persisted: readonly string[];
  readonly serialized: readonly string[];
}

/** The series a config can refer to: the defined ones and the built-in monitor series. */
export function monitorSeries(
  monitors: readonly MonitorConfig[],
): Array<Pick<SeriesConfig, 'name' | 'type' | 'interval' | 'windows' | 'store_prefix'> & { event: MonitorEvent }> {
  return monitors.flatMap((m) =>
    MONITOR_SERIES_BASES.map((b) => ({
      name: `${b.base}:${m.text}`,
      type: b.type,
      interval: m.interval,
      windows: m.windows,
      ...('store_prefix' in b ? { store_prefix: b.store_prefix } : {}),
      event: b.event,
    })),
  );
}

const built = new WeakMap<Config, SeriesCatalogue>();

/** The catalogue of `config`, built on first use and kept with it (a reload brings a new config). */
export function seriesCatalogue(config: Config): SeriesCatalogue {
  let c = built.get(config);
  if (!c) {
    c = buildCatalogue(config);
    built.set(config, c);
  }
  return c;
}

/** Every series definition of the config (see SeriesCatalogue.definitions). */
export function seriesDefinitions(config: Config): readonly SeriesDefinition[] {
  return seriesCatalogue(config).definitions;
}

/** Every series of the config with replicate: cluster | manager. */
export function replicatedSeries(config: Config): readonly ReplicatedSeries[] {
  return seriesCatalogue(config).replicated;
}

/**
 * The masks kept as aggregates in Redis for one series: /0 plus the mask of every policy that
 * counts this series, below the stored key length (longer masks are the leaves themselves).
 */
export function aggregateMasks(config: Pick<Config, 'policies'>, s: Pick<ReplicatedSeries, 'name' | 'type' | 'store_prefix'>): number[] {
  return keptMasks(s, policyMasks(config).get(s.name));
}

function buildCatalogue(config: Config): SeriesCatalogue {
  const masks = policyMasks(config);
  const wide = bytesSeries(config);
  const definitions: SeriesDefinition[] = [];
  const types = new Map<string, { type: SeriesType; interval: number; distinct: boolean }>();
  const replicated: ReplicatedSeries[] = [];
  for (const s of Object.values(config.series)) {
    const options: SeriesDefinition['options'] = { persist: s.persist, serialize: s.serialize, replicate: s.replicate };
    if (s.store_prefix !== undefined) options.store_prefix = s.store_prefix;
    if (s.max_keys !== undefined) options.max_keys = s.max_keys;
    if (s.distinct) options.distinct = true;
    if (wide.has(s.name)) options.wide = true;
    // A distinct series keeps a union set per kept prefix: only the masks its policies count.
    if (s.type !== 'string') options.levels = s.distinct ? [...(masks.get(s.name) ?? [])].sort((a, b) => a - b) : levelsFor(s.type, masks.get(s.name));
    definitions.push({ name: s.name, type: s.type, interval: s.interval, windows: s.windows, options });
    types.set(s.name, { type: s.type, interval: s.interval, distinct: s.distinct });
    if (s.replicate === 'none') continue;
    const r: ReplicatedSeries = {
      name: s.name,
      type: s.type,
      interval: s.interval,
      windows: s.windows,
      replicate: s.replicate,
      max_keys: s.max_keys ?? DEFAULT_MAX_KEYS,
      masks: [],
    };
    if (s.distinct) r.distinct = true;
    if (s.store_prefix !== undefined) r.store_prefix = s.store_prefix;
    r.masks = keptMasks(r, masks.get(s.name));
    replicated.push(r);
  }
  const monitors: Record<MonitorEvent, string[]> = { connections: [], receptions: [], rejections: [] };
  for (const m of monitorSeries(config.monitors)) {
    const options: SeriesDefinition['options'] = { levels: levelsFor(m.type, masks.get(m.name)) };
    if (m.store_prefix !== undefined) options.store_prefix = m.store_prefix;
    definitions.push({ name: m.name, type: m.type, interval: m.interval, windows: m.windows, options });
    types.set(m.name, { type: m.type, interval: m.interval, distinct: false });
    monitors[m.event].push(m.name);
  }
  const names = (flag: 'persist' | 'serialize'): string[] => Object.values(config.series).filter((s) => s[flag]).map((s) => s.name);
  return { definitions, types, monitors, replicated, persisted: names('persist'), serialized: names('serialize') };
}

/**
 * The series a `count: bytes` rule adds to: their window counts are 64-bit-safe doubles (sizes
 * overflow 32-bit counts after 2 GB), the others stay 32-bit.
 */
function bytesSeries(config: Pick<Config, 'record'>): Set<string> {
  const out = new Set<string>();
  for (const r of config.record) if (r.count === 'bytes') for (const s of r.series) out.add(s);
  return out;
}

/** Per series name: the masks the policies counting it use. */
function policyMasks(config: Pick<Config, 'policies'>): Map<string, Set<number>> {
  const masks = new Map<string, Set<number>>();
  for (const p of config.policies) {
    if (p.series && p.mask !== undefined) {
      const set = masks.get(p.series) ?? new Set<number>();
      set.add(p.mask);
      masks.set(p.series, set);
    }
  }
  return masks;
}

/** Masks the policies use on a cidr series become kept aggregate levels (O(1) counts). */
function levelsFor(type: SeriesType, masks: ReadonlySet<number> | undefined): number[] {
  const base = DEFAULT_LEVELS[type === 'cidr' ? 4 : 6];
  return [...new Set([...base, ...(masks ?? [])])].sort((a, b) => a - b);
}

/** /0 and the policy masks below the stored key length, ascending; none for a string series. */
function keptMasks(s: Pick<ReplicatedSeries, 'type' | 'store_prefix'>, masks: ReadonlySet<number> | undefined): number[] {
  if (s.type === 'string') return [];
  const leafBits = leafBitsOf(s);
  const set = new Set<number>([0]);
  for (const m of masks ?? []) if (m < leafBits) set.add(m);
  return [...set].sort((a, b) => a - b);
}
