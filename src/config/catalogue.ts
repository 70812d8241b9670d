/**
 * The series a config defines, derived once from it: the built-in per-monitor series.
 */
import type { SeriesConfig, MonitorConfig } from './types.js';
import { MONITOR_SERIES_BASES } from './vocabulary.js';

/** The series a config can refer to: the defined ones and the built-in monitor series. */
export function monitorSeries(
  monitors: readonly MonitorConfig[],
): Array<Pick<SeriesConfig, 'name' | 'type' | 'interval' | 'windows' | 'store_prefix'>> {
  return monitors.flatMap((m) =>
    MONITOR_SERIES_BASES.map((b) => ({
      name: `${b.base}:${m.text}`,
      type: b.type,
      interval: m.interval,
      windows: m.windows,
      ...('store_prefix' in b ? { store_prefix: b.store_prefix } : {}),
    })),
  );
}
