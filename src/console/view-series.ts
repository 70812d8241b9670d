/** Series: type, interval × windows, keys, memory; each links to its top talkers. */
import { api } from './api.js';
import { fmtBytes, fmtSeconds, h, table } from './dom.js';
import type { ApiSeries } from './types.js';
import { refreshingView } from './view.js';

export const seriesView = refreshingView('Series', 'Series', 5000, async (signal) => {
  const { series } = await api<{ series: ApiSeries[] }>('series', { signal });
  const rows = series.map((s) => [
    h('a', { href: `#top/${encodeURIComponent(s.name)}` }, s.name),
    s.type,
    `${fmtSeconds(s.interval)} × ${s.windows}`,
    s.keys,
    fmtBytes(s.memory_bytes),
    s.replicate,
    s.monitor ? 'monitor' : s.distinct ? 'distinct' : 'series',
  ]);
  return table(`${series.length} series`, ['Name', 'Type', 'Interval × windows', '#Keys', '#Memory', 'Replicate', 'Kind'], rows, 'No series defined.');
});
