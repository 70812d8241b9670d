/**
 * Policy firing rates over the last hour, per minute, derived from the recorder's running
 * counts (policy/action/mode → firings since start). Pure: `sample(now, counts)` attributes
 * what each count grew by since the previous sample to the minute of `now`; the admin listener
 * samples every few seconds and before each answer, so a firing lands in its minute or the next.
 * Memory: 60 numbers per policy/action/mode that fired in the last hour.
 */
export const MINUTES = 60;
const MINUTE_MS = 60_000;

export interface PolicyRate {
  policy: string;
  action: string;
  mode: string;
  /** Firings per minute, oldest first; the last is the current (partial) minute. */
  per_minute: number[];
  /** Firings in the last hour (the sum of per_minute). */
  total: number;
}

interface Track {
  /** counts[minute % 60] for the minute in minutes[minute % 60]. */
  counts: number[];
  minutes: number[];
}

export class FiringRates {
  private last: Map<string, number> | undefined;
  private readonly tracks = new Map<string, Track>();

  /** Takes the current counts; the first call only sets the baseline (firings before it are not this hour's news). */
  sample(now: number, counts: ReadonlyMap<string, number>): void {
    const minute = Math.floor(now / MINUTE_MS);
    const last = this.last;
    this.last = new Map(counts);
    if (!last) return;
    for (const [key, n] of counts) {
      const grew = n - (last.get(key) ?? 0);
      if (grew <= 0) continue;
      let t = this.tracks.get(key);
      if (!t) {
        t = { counts: new Array<number>(MINUTES).fill(0), minutes: new Array<number>(MINUTES).fill(-1) };
        this.tracks.set(key, t);
      }
      const slot = minute % MINUTES;
      if (t.minutes[slot] !== minute) {
        t.minutes[slot] = minute;
        t.counts[slot] = 0;
      }
      t.counts[slot]! += grew;
    }
  }

  /** Every policy/action/mode that fired in the last hour, busiest first. */
  rates(now: number): PolicyRate[] {
    const minute = Math.floor(now / MINUTE_MS);
    const out: PolicyRate[] = [];
    for (const [key, t] of this.tracks) {
      const per: number[] = [];
      for (let m = minute - MINUTES + 1; m <= minute; m++) {
        const slot = ((m % MINUTES) + MINUTES) % MINUTES;
        per.push(t.minutes[slot] === m ? t.counts[slot]! : 0);
      }
      const total = per.reduce((a, b) => a + b, 0);
      if (total === 0) {
        this.tracks.delete(key);
        continue;
      }
      const [policy = '', action = '', mode = ''] = key.split('\t');
      out.push({ policy, action, mode, per_minute: per, total });
    }
    return out.sort((a, b) => b.total - a.total || a.policy.localeCompare(b.policy));
  }
}
