/** A client's page (`show ip`): every series and monitor per window, open sessions, active bans, recent decisions. */
import { api } from './api.js';
import { decisionsTable } from './decisions-table.js';
import { fmtSeconds, h, table } from './dom.js';
import type { ApiBan, ApiDecision } from './types.js';
import type { View } from './view.js';

interface ShowIp {
  ip: string;
  key: string;
  sessions: number;
  series: Array<{ name: string; type: string; interval: number; monitor: boolean; distinct?: boolean; total: number; windows: number[] }>;
  bans: ApiBan[];
  decisions: ApiDecision[];
}

export const clientView: View = {
  title: 'Client',
  render(main, ctx) {
    const input = h('input', { id: 'client-ip', name: 'ip', type: 'text', inputmode: 'text', placeholder: '192.0.2.7 or 2001:db8::/48', value: decodeURIComponent(ctx.arg), required: true });
    const form = h('form', { class: 'inline', 'aria-label': 'Show a client' }, h('label', { for: 'client-ip' }, 'Address or prefix', input), h('button', { type: 'submit' }, 'Show'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      location.hash = `#client/${encodeURIComponent(input.value.trim())}`;
    });
    const out = h('div');
    main.append(h('h2', {}, 'Client'), form, out);
    if (ctx.arg === '') return;
    ctx.every(3000, async () => {
      const c = await api<ShowIp>(`show/ip/${encodeURIComponent(decodeURIComponent(ctx.arg))}`, { signal: ctx.signal });
      const width = Math.max(0, ...c.series.map((s) => s.windows.length));
      const rows = c.series.map((s) => [s.name, s.monitor ? 'monitor' : s.distinct ? 'distinct' : 'series', fmtSeconds(s.interval), s.total, ...Array.from({ length: width }, (_, i) => s.windows[i] ?? '')]);
      out.replaceChildren(
        h('p', {}, `${c.key}: `, h('strong', {}, String(c.sessions)), ' open session(s)'),
        table(`Counts for ${c.key} per window (0 is the current one)`, ['Series', 'Kind', 'Interval', '#Total', ...Array.from({ length: width }, (_, i) => `#W${i}`)], rows, 'No address series.'),
        table(
          'Active bans covering or inside it',
          ['Prefix', 'Policy', '#Seconds left', 'Until'],
          c.bans.map((b) => [b.prefix, b.policy, b.seconds_left, b.until]),
          'Not banned.',
        ),
        decisionsTable('Recent decisions', c.decisions),
      );
    });
  },
};
