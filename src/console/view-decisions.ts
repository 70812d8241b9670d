/** Recent decisions as they happen (server-sent events), newest first, at most 200 kept on screen. */
import { decisionsTable } from './decisions-table.js';
import { h } from './dom.js';
import { follow } from './live.js';
import type { ApiDecision } from './types.js';
import type { View } from './view.js';

const KEEP = 200;

export const decisionsView: View = {
  title: 'Decisions',
  render(main, ctx) {
    const state = h('p', { class: 'muted', role: 'status' }, 'Connecting…');
    const holder = h('div');
    main.append(h('h2', {}, 'Live decisions'), state, holder);
    const list: ApiDecision[] = [];
    let dropped = 0;
    const draw = (): void => {
      const t = decisionsTable(`Newest first (at most ${KEEP})${dropped ? `; ${dropped} not received (this page fell behind)` : ''}`, list);
      t.querySelector('tbody')?.setAttribute('id', 'decisions-body');
      holder.replaceChildren(t);
    };
    draw();
    void follow(
      'events/decisions',
      {
        event(type, data) {
          if (type === 'decision') {
            list.unshift(JSON.parse(data) as ApiDecision);
            if (list.length > KEEP) list.pop();
          } else if (type === 'dropped') dropped += (JSON.parse(data) as { dropped: number }).dropped;
          draw();
        },
        state(connected) {
          state.textContent = connected ? 'Live.' : 'Disconnected; reconnecting…';
          state.className = connected ? 'ok' : 'error';
        },
      },
      ctx.signal,
    );
  },
};
