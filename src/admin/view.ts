/**
 * What the admin listener and /metrics see of a running gateway: a narrow, read-only view
 * (plus the store seam, which the console verbs count, add and remove through). The gateway
 * implements it; nothing in admin/ imports the gateway itself.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { FiredRecord } from '../audit/recorder.js';
import type { SessionTracker } from '../audit/sessions.js';
import type { GatewayEvents } from '../events.js';
import type { Clock } from '../series/clock.js';
import type { SeriesRegistry } from '../series/registry.js';
import type { ProxyStats } from '../smtp/proxy-session.js';
import type { RelayStats } from '../smtp/relay/types.js';
import type { PersistStats } from '../history/persister.js';
import type { ManagedStore } from '../store/types.js';
import type { BansAdmin } from './bans.js';
import type { AlertCounts } from '../alerts/alert-sender.js';
import type { JournalStats } from '../journal/writer.js';
import type { MtaFrontKind, MtaFrontStats } from '../mta/listener.js';

export interface AdminView {
  /** The current configuration (a reload replaces it). */
  readonly config: Config;
  readonly clock: Clock;
  /** Epoch ms (injected clock) when the gateway started. */
  readonly startedAt: number;
  readonly logger: Logger;
  readonly registry: Pick<SeriesRegistry, 'list' | 'get'>;
  readonly store: ManagedStore;
  readonly sessions: Pick<SessionTracker, 'total' | 'count' | 'top'>;
  /** Policy firings: counts by policy/action/mode, the recent ones, store failures seen. */
  readonly recorder: {
    readonly decisionCounts: ReadonlyMap<string, number>;
    recentFirings(limit?: number): FiredRecord[];
    storeFailureCount(): number;
  };
  /** The SMTP front: open sessions and what its sessions counted. */
  readonly front: { readonly stats: ProxyStats; openSessions(): number };
  readonly relay: { stats(): RelayStats };
  /** Relay latency and other gateway-wide events. */
  readonly events: GatewayEvents;
  /** The milter and policy-service fronts that run, with their counters. */
  mtaFronts(): ReadonlyArray<{ readonly kind: MtaFrontKind; readonly stats: MtaFrontStats }>;
  /** Undefined before persistence started. */
  readonly persister: { stats(): PersistStats } | undefined;
  /** Bans: listed, added and lifted through the admin API, counted in /metrics (a multi-process gateway: the primary's). */
  readonly controls?: BansAdmin;
  /** Alert deliveries per alert: sent, failed, dropped. */
  readonly alerts?: { stats(): ReadonlyMap<string, AlertCounts> };
  /** Brings what the view reads up to date before a request (a multi-process gateway asks its workers). */
  refresh?(): Promise<void>;
  /** More metrics on the /metrics registry (a multi-process gateway's per-worker figures). */
  registerMetrics?(registry: Registry): void;
  /** The journal writer's figures; undefined while the config has no journal. */
  journalStats?(): JournalStats | undefined;
}
