/** Top talkers of a series at a chosen mask, one bar per window, refreshed live. */
import { api } from './api.js';
import { bar, clientLink, h, table } from './dom.js';
import type { ApiSeries } from './types.js';
import type { View } from './view.js';

interface TopAnswer {
  windows: [number, number];
  top: Array<{ key: string; count: number; windows?: number[] }>;
}

const FULL: Record<string, number> = { cidr: 32, cidr_ipv6: 128 };
const DEFAULT_MASK: Record<string, number> = { cidr: 24, cidr_ipv6: 64 };

export const topView: View = {
  title: 'Top talkers',
  async render(main, ctx) {
    const { series } = await api<{ series: ApiSeries[] }>('series', { signal: ctx.signal });
    const [wanted = '', maskText = ''] = ctx.arg.split('/').map(decodeURIComponent);
    const chosen = series.find((s) => s.name === wanted) ?? series[0];
    main.append(h('h2', {}, 'Top talkers'));
    if (!chosen) {
      main.append(h('p', {}, 'No series defined.'));
      return;
    }
    const select = h('select', { id: 'top-series', name: 'series' }, ...series.map((s) => h('option', { value: s.name, selected: s === chosen }, s.name)));
    const full = FULL[chosen.type];
    const mask = h('input', { id: 'top-mask', name: 'mask', type: 'number', min: 0, max: full ?? 0, value: maskText || (DEFAULT_MASK[chosen.type] ?? ''), disabled: full === undefined });
    const limit = h('input', { id: 'top-limit', name: 'limit', type: 'number', min: 1, max: 100, value: 10 });
    const form = h(
      'form',
      { class: 'inline', 'aria-label': 'Top talkers query' },
      h('label', { for: 'top-series' }, 'Series', select),
      h('label', { for: 'top-mask' }, 'Mask', mask),
      h('label', { for: 'top-limit' }, 'Limit', limit),
      h('button', { type: 'submit' }, 'Show'),
    );
    const out = h('div', { 'aria-live': 'off' });
    main.append(form, out);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      location.hash = `#top/${encodeURIComponent(select.value)}/${encodeURIComponent(mask.value)}`;
    });
    select.addEventListener('change', () => (location.hash = `#top/${encodeURIComponent(select.value)}`));
    ctx.every(2000, async () => {
      const q = new URLSearchParams({ limit: limit.value || '10', per_window: '1' });
      if (full !== undefined && mask.value !== '') q.set('mask', mask.value);
      const t = await api<TopAnswer>(`series/${encodeURIComponent(chosen.name)}/top?${q}`, { signal: ctx.signal });
      const windows = Array.from({ length: t.windows[1] - t.windows[0] + 1 }, (_, i) => t.windows[0] + i);
      const max = Math.max(0, ...t.top.flatMap((e) => e.windows ?? []));
      const rows = t.top.map((e) => [full === undefined ? e.key : clientLink(e.key), e.count, ...windows.map((_, i) => bar(e.windows?.[i] ?? 0, max, 80))]);
      const caption = `${chosen.name}: top ${t.top.length}${full !== undefined ? ` at /${mask.value}` : ''} (window 0 is the current one)`;
      out.replaceChildren(table(caption, ['Key', '#Total', ...windows.map((w) => `Window ${w}`)], rows, 'No counts in this series yet.'));
    });
  },
};
