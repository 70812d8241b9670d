/** Decisions as rows, for the live list and a client's page. */
import { clientLink, fmtTime, h, table } from './dom.js';
import type { ApiDecision } from './types.js';

export function decisionRow(d: ApiDecision): HTMLElement[] {
  const refused = d.action === 'tempfail' || d.action === 'reject';
  return [
    h('span', {}, fmtTime(d.at)),
    h('span', { class: refused ? 'error' : undefined }, d.action),
    h('span', {}, d.ban ? `${d.policy ?? ''} (ban ${d.ban})` : (d.policy ?? '')),
    h('span', {}, d.stage),
    d.client ? clientLink(d.client) : h('span', { class: 'muted' }, 'none'),
    h('span', {}, d.front),
    h('code', {}, d.cid),
    h('span', {}, d.reply ?? ''),
  ];
}

export function decisionsTable(caption: string, list: ApiDecision[]): HTMLElement {
  return table(caption, ['Time', 'Action', 'Policy', 'Stage', 'Client', 'Front', 'Session', 'Reply'], list.map(decisionRow), 'No decisions yet.');
}
