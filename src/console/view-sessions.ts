/** Open sessions per prefix (IPv4 and IPv6, at a chosen mask). */
import { api } from './api.js';
import { bar, clientLink, h, table } from './dom.js';
import type { View } from './view.js';

interface SessionsAnswer {
  total: number;
  open: number;
  mask: number;
  top: Array<{ key: string; count: number }>;
}

export const sessionsView: View = {
  title: 'Sessions',
  render(main, ctx) {
    const m4 = h('input', { id: 'mask4', type: 'number', min: 0, max: 32, value: 24 });
    const m6 = h('input', { id: 'mask6', type: 'number', min: 0, max: 128, value: 64 });
    const out = h('div');
    main.append(
      h('h2', {}, 'Open sessions per prefix'),
      h('form', { class: 'inline', 'aria-label': 'Masks' }, h('label', { for: 'mask4' }, 'IPv4 mask', m4), h('label', { for: 'mask6' }, 'IPv6 mask', m6)),
      out,
    );
    ctx.every(2000, async () => {
      const [v4, v6] = await Promise.all([
        api<SessionsAnswer>(`sessions?family=4&mask=${m4.value || 24}&limit=20`, { signal: ctx.signal }),
        api<SessionsAnswer>(`sessions?family=6&mask=${m6.value || 64}&limit=20`, { signal: ctx.signal }),
      ]);
      const rows = (a: SessionsAnswer): HTMLElement[][] => {
        const max = Math.max(0, ...a.top.map((t) => t.count));
        return a.top.map((t) => [clientLink(t.key), bar(t.count, max)]);
      };
      out.replaceChildren(
        h('p', {}, `${v4.open} open SMTP session(s); ${v4.total} with a known address.`),
        table(`IPv4 at /${v4.mask}`, ['Prefix', 'Sessions'], rows(v4), 'No open IPv4 sessions.'),
        table(`IPv6 at /${v6.mask}`, ['Prefix', 'Sessions'], rows(v6), 'No open IPv6 sessions.'),
      );
    });
  },
};
