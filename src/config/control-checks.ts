/**
 * Cross-field checks of the operator controls (SPEC §6): a policy's ban needs an action that
 * refuses or slows the client; alert names are unique and their `policies` name policies that
 * exist. Problems carry the key path they are about.
 */
import { suggest } from './problems.js';
import type { AlertConfig, PathProblem, PolicyConfig } from './types.js';

export interface ControlsInput {
  policies: ReadonlyArray<PolicyConfig | null>;
  alerts: ReadonlyArray<AlertConfig | null>;
}

export function checkControls(input: ControlsInput, problems: PathProblem[]): void {
  const add = (path: Array<string | number>, message: string) => problems.push({ path, message });

  input.policies.forEach((p, i) => {
    if (p?.ban && p.action === 'accept') {
      add(['policies', i, 'ban'], `a ban goes with an action that refuses or slows the client (tempfail, reject, tarpit), this policy's action is accept`);
    }
  });

  const policyNames = input.policies.flatMap((p) => (p ? [p.name] : []));
  // A policy that failed to parse still has a name the operator meant: do not call it unknown.
  const unparsed = input.policies.some((p) => p === null);
  const seen = new Map<string, number>();
  input.alerts.forEach((a, i) => {
    if (!a) return;
    const first = seen.get(a.name);
    if (first !== undefined) add(['alerts', i, 'name'], `alert name "${a.name}" is already used by alerts[${first}]`);
    else seen.set(a.name, i);
    if (unparsed) return;
    const single = a.policies?.length === 1;
    a.policies?.forEach((name, j) => {
      if (policyNames.includes(name)) return;
      const hint = suggest(name, policyNames);
      add(single ? ['alerts', i, 'policies'] : ['alerts', i, 'policies', j], `unknown policy "${name}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
    });
  });
}
