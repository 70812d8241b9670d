/** A replay's result as text for an operator (`auditgate replay`; --json prints the result itself). */
import type { ReplayResult } from './replay.js';
import type { PolicyFirings } from './tally.js';

const n = (x: number): string => x.toLocaleString('en-US');
const time = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s % 86_400 === 0) return `${s / 86_400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

function table(rows: string[][], indent = '  '): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `${indent}${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('   ')}`.trimEnd());
}

const changed = (f: PolicyFirings, g: PolicyFirings): string => (f.enforce === g.enforce && f.shadow === g.shadow ? '' : '*');

export function formatReport(r: ReplayResult): string {
  const out: string[] = [];
  const versus = r.before === 'recorded' ? 'the recorded decisions' : `the baseline ${r.before}`;
  out.push(`replay of ${n(r.read.files)} journal file${r.read.files === 1 ? '' : 's'}: ${n(r.events)} events, ${n(r.sessions)} sessions, ${time(r.first)} – ${time(r.last)}`);
  out.push(`candidate ${r.candidate}, compared with ${versus}`);
  if (r.read.skipped || r.read.outside) out.push(`skipped: ${n(r.read.skipped)} lines that are not journal lines (listed on stderr), ${n(r.read.outside)} outside --from/--to`);
  if (r.outOfOrder.lines) out.push(`${n(r.outOfOrder.lines)} lines were up to ${n(r.outOfOrder.maxMs)} ms out of time order (replayed in file order)`);
  if (r.events === 0) {
    out.push('nothing to replay');
    return `${out.join('\n')}\n`;
  }
  out.push(`warm-up: the replay's counts start empty, so decisions in the first ${duration(r.warmupMs)} (the longest series coverage) may differ for that reason alone`);

  const d = r.decisions;
  out.push('');
  out.push(
    `decisions: ${n(d.compared)} compared, ${n(d.changed)} changed${d.changedInWarmup ? ` (${n(d.changedInWarmup)} in the warm-up)` : ''}` +
      `, ${n(d.otherPolicy)} the same by another policy`,
  );
  if (d.unreachedAfter) out.push(`  ${n(d.unreachedAfter)} recorded events would not have happened: the candidate had refused the session or the command earlier`);
  if (d.unreachedBefore) out.push(`  ${n(d.unreachedBefore)} events the baseline would not have seen, the candidate does`);
  const transitions = Object.entries(d.transitions).sort((a, b) => b[1] - a[1]);
  if (transitions.length) out.push(...table(transitions.map(([k, v]) => [k, n(v)])));

  out.push('');
  out.push('policies (enforce and shadow firings, before → after; * changed):');
  if (r.policies.length) {
    const rows = [['policy', 'enforce', 'shadow', 'first firing before', 'first firing after', '']];
    for (const p of r.policies) {
      rows.push([p.policy, `${n(p.before.enforce)} → ${n(p.after.enforce)}`, `${n(p.before.shadow)} → ${n(p.after.shadow)}`, time(p.before.first), time(p.after.first), changed(p.before, p.after)]);
    }
    out.push(...table(rows));
  }

  const s = r.sessionChanges;
  const moved = Object.values(s.transitions).reduce((a, b) => a + b, 0);
  out.push('');
  out.push(`sessions: ${n(moved)} of ${n(r.sessions)} with another outcome`);
  const st = Object.entries(s.transitions).sort((a, b) => b[1] - a[1]);
  if (st.length) out.push(...table(st.map(([k, v]) => [k, n(v)])));
  const prefixes = (label: string, list: ReplayResult['sessionChanges']['harsher']): void => {
    for (const [bits, v6] of [['/24s', false], ['/64s', true]] as const) {
      const some = list.filter((p) => p.prefix.includes(':') === v6);
      if (some.length) out.push(`  ${label}, ${bits}: ${some.map((p) => `${p.prefix} (${n(p.sessions)})`).join(', ')}`);
    }
  };
  prefixes('most affected prefixes, answered more harshly', s.harsher);
  prefixes('most affected prefixes, answered more kindly', s.kinder);

  if (d.examples.length) {
    out.push('');
    out.push('first changed decisions:');
    for (const e of d.examples) out.push(`  ${time(e.t)}  ${e.cid}  ${e.client ?? '-'}  ${e.event}: ${e.before} → ${e.after}${e.policy ? ` (${e.policy})` : ''}`);
  }
  return `${out.join('\n')}\n`;
}
