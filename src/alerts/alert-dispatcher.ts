/**
 * Alerts (`alerts:` in the config): when a policy that refuses or slows clients fires (in any
 * mode: enforce, shadow, protected) for a key for the first time in an alert's `min_interval`,
 * one JSON POST goes to the alert's URL:
 *
 *   {"alert":"ops","policy":"dha-ban","action":"tempfail","mode":"enforce","stage":"rcpt",
 *    "series":"invalid_recipients","key":"192.0.2.0/24","count":51,"above":50,"windows":[0,3],
 *    "counts":[12,39,0,0],"client":"192.0.2.7","cid":"1a2b3c4d5e6f","time":"2026-11-20T10:00:00.000Z","node":"mx1"}
 *
 * `key` is the prefix for address-keyed policies (`192.0.2.0/24`, `198.51.100.7/32`), the string key
 * otherwise. `counts[v]` is the key's count in window v (0 = the current one) up to the policy's last
 * window; `series`, `key`, `count`, `above`, `windows` and `counts` are null where the policy has
 * none (a client list; the sessions gauge has no windows). Accept policies never alert.
 *
 * `fired` runs on the SMTP path: it only matches and deduplicates (per alert, policy and key,
 * on the injected clock); reading the window counts and sending happen afterwards, unawaited.
 */
import type { Logger } from 'pino';
import type { AlertConfig } from '../config/types.js';
import type { FiringEvent } from '../audit/recorder.js';
import type { Clock } from '../series/clock.js';
import type { AlertSender, AlertTarget } from './alert-sender.js';
import { clientPrefix } from '../bans/ban-list.js';

export interface AlertDispatcherOptions {
  clock: Clock;
  logger: Logger;
  sender: AlertSender;
  /** This node's name in every alert (server.hostname). */
  node: () => string;
  /** The firing key's count per window, 0..the policy's last window; undefined when it has none. */
  windowCounts: (e: FiringEvent) => Promise<number[] | undefined>;
  /** (alert, policy, key) triples remembered for deduplication; the oldest go first past it. Default 100,000. */
  maxRemembered?: number;
}

interface Compiled {
  target: AlertTarget;
  policies: ReadonlySet<string> | undefined;
  minIntervalMs: number;
}

export class AlertDispatcher {
  private alerts: Compiled[] = [];
  /** `alert\tpolicy\tkey` → when it was last sent (insertion order = oldest first). */
  private readonly last = new Map<string, number>();

  constructor(private readonly opts: AlertDispatcherOptions) {}

  /** Applies a (reloaded) config's alerts. */
  configure(alerts: readonly AlertConfig[]): void {
    this.alerts = alerts.map((a) => ({
      target: { name: a.name, url: a.url, headers: a.headers, timeoutMs: Math.round(a.timeout * 1000), retries: a.retries },
      policies: a.policies ? new Set(a.policies) : undefined,
      minIntervalMs: Math.round(a.min_interval * 1000),
    }));
  }

  /** A policy fired: queues an alert for every entry that wants it and has not sent one for this key lately. */
  fired(e: FiringEvent): void {
    if (this.alerts.length === 0 || e.policy.action === 'accept') return;
    const key = keyOf(e) ?? e.ip;
    const due: AlertTarget[] = [];
    for (const a of this.alerts) {
      if (a.policies && !a.policies.has(e.policy.name)) continue;
      const id = `${a.target.name}\t${e.policy.name}\t${key}`;
      const prev = this.last.get(id);
      if (prev !== undefined && e.at - prev < a.minIntervalMs) continue;
      this.remember(id, e.at);
      due.push(a.target);
    }
    if (due.length > 0) void this.send(due, e, keyOf(e));
  }

  private remember(id: string, at: number): void {
    this.last.delete(id);
    this.last.set(id, at);
    const max = this.opts.maxRemembered ?? 100_000;
    while (this.last.size > max) this.last.delete(this.last.keys().next().value!);
  }

  private async send(targets: AlertTarget[], e: FiringEvent, key: string | undefined): Promise<void> {
    let counts: number[] | undefined;
    try {
      counts = await this.opts.windowCounts(e);
    } catch (err) {
      this.opts.logger.debug({ err, policy: e.policy.name }, 'alert: window counts not available');
    }
    const p = e.policy;
    const windowed = p.series !== undefined && !p.gauge;
    const payload = {
      policy: p.name,
      action: p.action,
      mode: e.mode,
      stage: e.stage,
      series: p.series ?? null,
      key: key ?? null,
      count: e.count ?? null,
      above: p.above ?? null,
      windows: windowed ? [p.startv, p.endv] : null,
      counts: counts ?? null,
      client: e.ip || null,
      cid: e.cid,
      time: new Date(e.at).toISOString(),
      node: this.opts.node(),
    };
    for (const t of targets) this.opts.sender.enqueue(t, JSON.stringify({ alert: t.name, ...payload }));
  }
}

/** The firing's key as an operator reads it: an address-keyed policy's prefix normalized (`192.0.2.0/24`), else the key. */
function keyOf(e: FiringEvent): string | undefined {
  if (e.key === undefined || e.policy.seriesType === 'string' || !e.client) return e.key;
  return clientPrefix(e.client, e.policy.mask);
}
