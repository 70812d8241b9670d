/** Bans: the active ones with a lift button each, and a form to add one. */
import { api, ApiError } from './api.js';
import { errorBox, fmtTime, h, table } from './dom.js';
import type { ApiBan } from './types.js';
import type { View } from './view.js';

export const bansView: View = {
  title: 'Bans',
  render(main, ctx) {
    const note = h('p', { role: 'status' });
    const out = h('div');
    const prefix = h('input', { id: 'ban-prefix', name: 'prefix', type: 'text', placeholder: '198.51.100.0/24', required: true });
    const dur = h('input', { id: 'ban-for', name: 'for', type: 'text', value: '1h', required: true });
    const form = h(
      'form',
      { class: 'inline', 'aria-label': 'Add a ban' },
      h('label', { for: 'ban-prefix' }, 'Address or prefix', prefix),
      h('label', { for: 'ban-for' }, 'For (e.g. 30m, 1h, 1d)', dur),
      h('button', { type: 'submit' }, 'Ban'),
    );
    main.append(h('h2', {}, 'Bans'), form, note, out);

    const act = async (what: () => Promise<string>): Promise<void> => {
      try {
        note.replaceChildren(h('span', { class: 'ok' }, await what()));
      } catch (e) {
        note.replaceChildren(errorBox(e instanceof ApiError ? e.message : String(e)));
      }
      await refresh();
    };
    const lift = (p: string): Promise<void> =>
      act(async () => {
        await api(`bans?prefix=${encodeURIComponent(p)}`, { method: 'DELETE' });
        return `Lifted the ban on ${p}.`;
      });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void act(async () => {
        const r = await api<{ ban: ApiBan }>('bans', { method: 'POST', body: { prefix: prefix.value.trim(), for: dur.value.trim() } });
        prefix.value = '';
        return `Banned ${r.ban.prefix} until ${fmtTime(r.ban.until)}.`;
      });
    });

    const refresh = async (): Promise<void> => {
      const { bans, total } = await api<{ bans: ApiBan[]; total: number }>('bans?limit=500', { signal: ctx.signal });
      // The lift button right after the prefix: on a phone the rest of the row may need scrolling.
      const rows = bans.map((b) => [
        b.prefix,
        h('button', { type: 'button', 'aria-label': `Lift the ban on ${b.prefix}`, 'data-prefix': b.prefix, onclick: () => void lift(b.prefix) }, 'Lift'),
        b.policy,
        b.level,
        b.seconds_left,
        fmtTime(b.until),
        b.node ?? '',
      ]);
      const focused = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.prefix : undefined;
      out.replaceChildren(table(`${total} active ban(s)${total > bans.length ? `, the first ${bans.length} shown` : ''}`, ['Prefix', 'Action', 'Policy', '#Level', '#Seconds left', 'Until', 'Node'], rows, 'No active bans.'));
      // A refresh must not steal the keyboard from an operator on a lift button.
      if (focused !== undefined) out.querySelector<HTMLButtonElement>(`button[data-prefix="${CSS.escape(focused)}"]`)?.focus();
    };
    ctx.every(3000, refresh);
  },
};
