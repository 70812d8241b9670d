/** Store state: in process or Redis, fallback (on_error: local) and what waits to be shipped; the gateway's health. */
import { api } from './api.js';
import { fmtTime, h, table } from './dom.js';
import type { ApiStore } from './types.js';
import { refreshingView } from './view.js';

export const storeView = refreshingView('Store', 'Store and gateway', 3000, async (signal) => {
  const [{ store }, health] = await Promise.all([api<{ store: ApiStore }>('series', { signal }), api<{ uptime: number; sessions: number }>('healthz', { signal })]);
  const state = h('span', { class: store.state === 'fallback' ? 'fallback' : 'ok' }, store.state === 'fallback' ? 'FALLBACK: Redis unreachable, counting locally' : 'ok');
  const rows: Array<[string, HTMLElement | string | number]> = [
    ['Store', store.kind],
    ['State', state],
    ['Since', fmtTime(store.since)],
    ['Errors', store.errors],
    ['Adds waiting for Redis', store.pending],
    ['Dropped (this outage)', store.dropped ?? 0],
    ['Capped adds', store.capped ?? 0],
    ['Last error', store.lastError ?? 'none'],
    ['On error', store.onError ?? ''],
    ['Open sessions', health.sessions],
    ['Uptime (s)', health.uptime],
  ];
  return table('Status', ['What', 'Value'], rows);
});
