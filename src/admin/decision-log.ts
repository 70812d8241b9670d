/**
 * The recent decisions the console shows: a bounded ring of the engine's verdicts (newest
 * last), each with a sequence number so a reconnecting stream resumes after the last one it saw
 * (SSE `Last-Event-ID`). Pure: fed by whoever listens to the engine.
 */
import ipaddr from 'ipaddr.js';
import type { DecisionEvent } from '../events.js';

export interface LoggedDecision {
  /** 1, 2, 3, … for this log's lifetime. */
  id: number;
  event: DecisionEvent;
}

export class DecisionLog {
  private readonly ring: LoggedDecision[] = [];
  private next = 1;

  constructor(readonly capacity = 500) {}

  push(event: DecisionEvent): LoggedDecision {
    const d = { id: this.next++, event };
    this.ring.push(d);
    if (this.ring.length > this.capacity) this.ring.shift();
    return d;
  }

  /** The id of the newest decision (0 before the first). */
  lastId(): number {
    return this.next - 1;
  }

  /**
   * Decisions after `id`, oldest first, and how many of them the ring no longer holds
   * (a reader that was away longer than the ring lasts).
   */
  since(id: number): { decisions: LoggedDecision[]; missed: number } {
    const first = this.ring[0]?.id ?? this.next;
    const decisions = this.ring.filter((d) => d.id > id);
    return { decisions, missed: Math.max(0, first - id - 1) };
  }

  /** The newest `limit` decisions, newest first; only clients inside `prefix` when given. */
  recent(limit: number, prefix?: string): LoggedDecision[] {
    const inside = prefix === undefined ? () => true : prefixMatcher(prefix);
    const out: LoggedDecision[] = [];
    for (let i = this.ring.length - 1; i >= 0 && out.length < limit; i--) {
      const d = this.ring[i]!;
      if (inside(d.event.client)) out.push(d);
    }
    return out;
  }
}

/** A test for "this address is inside `prefix`" (a normalized `addr/len`); IPv4-mapped IPv6 folds to IPv4. */
export function prefixMatcher(prefix: string): (address: string) => boolean {
  let net: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    net = ipaddr.parseCIDR(prefix);
  } catch {
    return () => false;
  }
  return (address) => {
    if (address === '') return false;
    try {
      const a = ipaddr.process(address);
      return a.kind() === net[0].kind() && a.match(net);
    } catch {
      return false;
    }
  };
}
