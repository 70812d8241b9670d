/**
 * What a multi-process gateway's primary owns for its workers besides the series: the ban list
 * (its file, Redis sharing, the admin API, bans policies issue), the alerts, and the one journal
 * writer. Workers report to it (reporter.ts: journal lines, firings, ban requests); it sends
 * every worker each change of the ban list as it happens (`broadcast`), and a worker that
 * starts gets the bans in force with its config.
 *
 * Why push rather than ask at connect: a connect is then checked against the worker's copy with
 * no round trip (a connect stage with nothing to count needs none at all), as every node of a
 * Redis cluster does with its own copy; a ban list changes rarely, connects are the hot path.
 * A ban or lift made through the admin API is answered only once every worker has applied it
 * (`settle`: a round trip to each worker, which handles its messages in order), so the next
 * connection anywhere sees it.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Clock } from '../series/clock.js';
import { parseClientAddress } from '../series/address.js';
import type { SeriesStore } from '../store/types.js';
import type { SessionGauge } from '../audit/sessions.js';
import { Recorder, type FiringEvent } from '../audit/recorder.js';
import { OperatorControls } from '../audit/controls.js';
import { compilePolicies, type CompiledPolicy } from '../policy/compile.js';
import { BanService } from '../bans/ban-service.js';
import { BanSync } from '../bans/ban-sync.js';
import type { Ban } from '../bans/ban-list.js';
import type { BanStats } from '../bans/ban-service.js';
import type { BansAdmin } from '../admin/bans.js';
import { AlertSender } from '../alerts/alert-sender.js';
import { AlertDispatcher } from '../alerts/alert-dispatcher.js';
import { followJournal } from '../journal/follow.js';
import { controlLine } from '../journal/journal.js';
import { formatLine } from '../journal/line.js';
import type { JournalStats, JournalWriter } from '../journal/writer.js';
import { JournalMerge } from './journal-merge.js';
import type { BanChange, WireBanRequest, WireFiring, WorkerReport } from './messages.js';

export interface PrimaryServicesOptions {
  config: Config;
  /** The primary's store and sessions gauge (alerts read a firing's counts per window there). */
  store: SeriesStore;
  sessions: SessionGauge;
  clock: Clock;
  logger: Logger;
  /** Sends ban changes to every worker. */
  broadcast(changes: BanChange[]): void;
  /** Resolves once every worker handled what was sent to it before. */
  settle(): Promise<void>;
  /** Connections the workers refused because their client was banned (their reports summed). */
  workersRefused(): number;
}

export class PrimaryServices {
  readonly bans: BanService;
  readonly operator: OperatorControls;
  /** What the admin API and /metrics see of the bans. */
  readonly controls: BansAdmin;
  readonly alerts: AlertSender;
  private readonly dispatcher: AlertDispatcher;
  /** Reads a firing's counts per window for alerts (never decides anything here). */
  private readonly recorder: Recorder;
  private policies = new Map<string, CompiledPolicy>();
  private journalWriter: JournalWriter | undefined;
  private readonly merge: JournalMerge;
  private config: Config;

  constructor(private readonly opts: PrimaryServicesOptions) {
    const { config, clock, logger } = opts;
    this.config = config;
    this.bans = new BanService({ clock, logger, stateDir: config.state_dir, saveDelayMs: Math.min(1000, config.persist_interval * 1000), node: config.server.hostname });
    this.operator = new OperatorControls(this.bans, config);
    this.bans.onChange = (change) => opts.broadcast([change]);
    // bans made or lifted by hand go into the journal with the workers' lines, in time order
    this.operator.onManual = (change) => {
      if (this.journalWriter) this.merge.add([formatLine(controlLine(change, clock.now()))]);
    };
    const operator = this.operator;
    this.controls = {
      list: () => operator.list(),
      add: async (prefix, seconds) => this.settled(operator.add(prefix, seconds)),
      lift: async (prefix) => this.settled(operator.lift(prefix)),
      bans: {
        stats: (): BanStats => {
          const mine = this.bans.stats();
          return { ...mine, refused: mine.refused + opts.workersRefused() };
        },
      },
    };
    this.recorder = new Recorder(config, opts.store, opts.sessions, logger, clock);
    this.alerts = new AlertSender({ logger });
    this.dispatcher = new AlertDispatcher({ clock, logger, sender: this.alerts, node: () => this.config.server.hostname, windowCounts: (e) => this.recorder.windowCounts(e) });
    this.merge = new JournalMerge({ clock, write: (line) => this.journalWriter?.append(line) });
    this.configure(config);
  }

  /** Loads the ban file, connects the shared ban list (store.redis), opens the journal. */
  async start(): Promise<void> {
    this.bans.start();
    if (this.config.store.redis !== undefined) {
      this.bans.share = await BanSync.connect({ redis: this.config.store.redis, service: this.bans, clock: this.opts.clock, logger: this.opts.logger });
    }
    await this.configureJournal(this.config);
  }

  /** Applies a (reloaded) config: protected networks, alerts, the journal. */
  async reload(config: Config): Promise<void> {
    this.configure(config);
    await this.configureJournal(config);
  }

  private configure(config: Config): void {
    this.config = config;
    this.operator.configure(config);
    this.recorder.configure(config);
    this.dispatcher.configure(config.alerts);
    const byName = new Map<string, CompiledPolicy>();
    for (const list of Object.values(compilePolicies(config))) for (const p of list) byName.set(p.name, p);
    this.policies = byName;
  }

  private configureJournal(config: Config): Promise<void> {
    return followJournal(this.journalWriter, config.journal, this.opts, (writer) => {
      if (!writer) this.merge.flush();
      this.journalWriter = writer;
    });
  }

  /** The bans in force (what a starting worker gets with its config). */
  inForce(): Ban[] {
    return this.bans.list.list();
  }

  /** A worker's report; `reply` sends ban changes to that worker alone. */
  report(r: WorkerReport, reply: (changes: BanChange[]) => void): void {
    if (r.journal && this.journalWriter) this.merge.add(r.journal);
    for (const f of r.firings ?? []) this.fired(f);
    for (const b of r.bans ?? []) this.banRequest(b, reply);
  }

  /**
   * A policy's ban from a worker, issued here with the whole history. A new ban reaches every
   * worker (onChange); the asking worker alone learns of a ban already in force (it replaces its
   * own) or of none (the list is full: its own goes).
   */
  private banRequest(b: WireBanRequest, reply: (changes: BanChange[]) => void): void {
    const { prefix, spec, policy, cid } = b.issue;
    const before = this.bans.list.get(prefix);
    const ban = this.bans.issue(prefix, spec, policy, cid);
    if (!ban) reply([{ lift: prefix }]);
    else if (before) reply([{ ban: before }]);
  }

  private fired(f: WireFiring): void {
    const policy = this.policies.get(f.policy);
    if (!policy) return; // a reload renamed it meanwhile
    const e: FiringEvent = { at: f.at, cid: f.cid, stage: f.stage, mode: f.mode, policy, client: parseClientAddress(f.ip), ip: f.ip };
    if (f.key !== undefined) e.key = f.key;
    if (f.count !== undefined) e.count = f.count;
    this.dispatcher.fired(e);
  }

  private async settled(ban: Ban): Promise<Ban> {
    await this.opts.settle();
    return ban;
  }

  journalStats(): JournalStats | undefined {
    return this.journalWriter?.stats();
  }

  /** After the workers drained: the last journal lines are written, bans saved, alerts dropped. */
  async close(): Promise<void> {
    this.merge.flush();
    await this.journalWriter?.close();
    this.journalWriter = undefined;
    await this.bans.close();
    this.alerts.close();
  }
}
