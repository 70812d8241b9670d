/** Policy firing rates over the last hour, per minute. */
import { api } from './api.js';
import { spark, table } from './dom.js';
import type { PolicyRate } from '../admin/firing-rates.js';
import { refreshingView } from './view.js';

export const ratesView = refreshingView('Firing rates', 'Policy firing rates, last hour', 5000, async (signal) => {
  const { rates } = await api<{ rates: PolicyRate[] }>('rates', { signal });
  const rows = rates.map((r) => [r.policy, r.action, r.mode, r.total, r.per_minute.slice(-5).reduce((a, b) => a + b, 0), spark(r.per_minute, `${r.policy} per minute, oldest first`)]);
  return table('Firings per policy (shadow and protected included), since the admin listener started', ['Policy', 'Action', 'Mode', '#Last hour', '#Last 5 min', 'Per minute'], rows, 'No policy fired in the last hour.');
});
