/**
 * What one side of a replay decided, read from its journal lines (the recorded journal, or the
 * lines a config's engine wrote while replaying it): how often each policy fired, enforcing and
 * in shadow, and when first; each session's outcome (accepted, tarpitted, refused).
 */
import { isStage, type JournalLine } from '../journal/line.js';

export interface PolicyFirings {
  enforce: number;
  shadow: number;
  /** Epoch ms of the first firing, either mode. */
  first?: number;
}

/** A session's outcome: the strongest answer it got. */
export const OUTCOMES = ['accepted', 'tarpitted', 'refused'] as const;
export type SessionOutcome = (typeof OUTCOMES)[number];

export class Tally {
  readonly policies = new Map<string, PolicyFirings>();
  /** Open sessions' outcome so far, as an index into OUTCOMES (absent: accepted). */
  private readonly ranks = new Map<string, number>();

  add(line: JournalLine): void {
    if (!isStage(line.e)) return;
    if (line.y !== undefined && line.o !== undefined) this.fire(line.y, 'enforce', line.t);
    if (line.w) for (const p of line.w) this.fire(p, 'shadow', line.t);
    // a reject event's policies answer nobody, nor do those of a client already gone
    if (line.e === 'reject' || line.l || line.o === undefined || line.o === 'accept') return;
    const rank = line.o === 'tarpit' ? 1 : 2;
    if ((this.ranks.get(line.c) ?? 0) < rank) this.ranks.set(line.c, rank);
  }

  /** The session's outcome; the session is forgotten. */
  take(cid: string): number {
    const r = this.ranks.get(cid) ?? 0;
    this.ranks.delete(cid);
    return r;
  }

  private fire(policy: string, mode: 'enforce' | 'shadow', t: number): void {
    let f = this.policies.get(policy);
    if (!f) {
      f = { enforce: 0, shadow: 0 };
      this.policies.set(policy, f);
    }
    f[mode]++;
    if (f.first === undefined || t < f.first) f.first = t;
  }
}
