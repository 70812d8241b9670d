/**
 * The recorder: for a stage event, derive keys, add to series (record rules and built-in
 * monitors), read counts, ask the policy engine. It never throws into the SMTP layer: a store
 * failure follows store.on_error (local is handled inside the store; accept skips the
 * policies that need counts; tempfail refuses the event with a 4xx).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { MonitorEvent, Stage } from '../config/vocabulary.js';
import { immediateStore, type SeriesStore, type AddOp, type CountQuery, type ImmediateStore } from '../store/types.js';
import { after, type Maybe } from '../maybe.js';
import type { Clock } from '../series/clock.js';
import { compilePolicies, type CompiledPolicies, type CompiledPolicy } from '../policy/compile.js';
import { applicable, evaluate, secondsUntilFree, type Decision, type EventContext, type Firing } from '../policy/evaluate.js';
import type { SessionGauge } from './sessions.js';
import { InvalidKeyError } from '../errors.js';
import { RecordRules } from './record-rules.js';
import type { ClientAddress } from '../series/address.js';

export interface FiredRecord {
  at: number;
  cid: string;
  client: string;
  stage: Stage;
  policy: string;
  action: string;
  /** protected: the policy would have refused or slowed a client in a protected network. */
  mode: FiringMode;
  key?: string;
  count?: number;
  above?: number;
}

export type FiringMode = 'enforce' | 'shadow' | 'protected';

/** A policy that fired, for whoever listens (alerts). */
export interface FiringEvent {
  /** Epoch ms (injected clock). */
  at: number;
  cid: string;
  stage: Stage;
  mode: FiringMode;
  policy: CompiledPolicy;
  /** The series key that crossed the threshold (`ip/mask` or a string key); none for client lists. */
  key?: string;
  count?: number;
  client: ClientAddress | undefined;
  ip: string;
}

/** What a stage may ask of the recorder besides the event. */
export interface StageOptions {
  /** The session is trusted (an accept at connect): record, evaluate nothing. */
  skipPolicies?: boolean;
  /** The client is in a protected network: only an accept policy may decide. */
  protect?: boolean;
}

export interface StageResult extends Decision {
  /** Seconds until the count that fired frees up, when it can be told. */
  retryAfter?: number;
  /** True when the store failed and on_error: tempfail refused the event. */
  storeFailure?: boolean;
  /** What the event did, for the journal: when it was recorded (epoch ms) and its adds. */
  at?: number;
  adds?: readonly AddOp[];
  /** The policies that applied, with the count each saw (undefined: none), for the journal. */
  seen?: { items: ReadonlyArray<{ policy: CompiledPolicy; key?: string }>; counts: ReadonlyArray<number | undefined> };
}

const FIRING_MESSAGES: Record<FiringMode, string> = {
  enforce: 'policy fired',
  shadow: 'policy would fire (shadow)',
  protected: 'policy would fire (protected network: not enforced)',
};

export class Recorder {
  private policies!: CompiledPolicies;
  private rules!: RecordRules;
  private onError!: Config['store']['on_error'];
  private readonly recent: FiredRecord[] = [];
  private storeFailures = 0;
  private lastStoreLog = 0;
  private invalidKeys = 0;
  private lastInvalidLog = -Infinity;
  /** decisions[`${policy}\t${action}\t${mode}`] = n */
  readonly decisionCounts = new Map<string, number>();
  /** Called with every firing (logged first); it must not block: the SMTP reply waits for the recorder. */
  onFiring: ((e: FiringEvent) => void) | undefined;
  /** The store, when it answers at once: stages are then decided without awaiting. */
  private readonly immediate: ImmediateStore | undefined;

  constructor(
    config: Config,
    private readonly store: SeriesStore,
    private readonly sessions: SessionGauge,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {
    this.immediate = immediateStore(store);
    this.configure(config);
  }

  /** Applies a (reloaded) config: compiled once here, never per event. */
  configure(config: Config): void {
    this.policies = compilePolicies(config);
    this.onError = config.store.on_error;
    this.rules = new RecordRules(config);
  }

  /**
   * Records the event's adds (record rules, monitors) and evaluates nothing: a banned client's
   * connect, refused before any policy runs, still counts.
   */
  async record(ctx: EventContext): Promise<void> {
    const ops: AddOp[] = [];
    this.rules.collect(ctx, ops);
    if (ops.length) await this.safeAdd(ops);
  }

  /** Adds a built-in monitor event for the client (to its family's series). */
  async monitor(event: MonitorEvent, client: ClientAddress | undefined): Promise<void> {
    if (!client) return;
    const ops = this.rules.monitorAdds(event, client);
    if (ops.length) await this.safeAdd(ops);
  }

  /**
   * True when the stage has nothing to record (no record rule, no monitor) and nothing to
   * evaluate: the caller may go on at once without calling stage().
   */
  passes(stage: Stage, skipPolicies = false): boolean {
    if (this.rules.adds(stage)) return false;
    return skipPolicies || this.policies[stage].length === 0;
  }

  /** Records the event and evaluates the stage's policies (at once, with a store in this process). */
  stage(ctx: EventContext, cid: string, opts: StageOptions = {}): Maybe<StageResult> {
    const at = this.clock.now();
    const ops: AddOp[] = [];
    this.rules.collect(ctx, ops);
    const decide = (added: boolean): Maybe<StageResult> => {
      if (!added && this.onError === 'tempfail') return { verdict: 'tempfail', shadow: [], storeFailure: true, at, adds: ops };
      return after(this.decide(ctx, cid, opts.skipPolicies === true, opts.protect === true), (res) => {
        res.at = at;
        res.adds = ops;
        return res;
      });
    };
    return ops.length ? after(this.safeAdd(ops), decide) : decide(true);
  }

  /**
   * Takes back the adds `stage()` made for an event (an AUTH attempt counted before the backend
   * was asked, whose password turned out right). Evaluates nothing. A value added to a distinct
   * series cannot be taken back (a set forgets nothing but by ageing): such adds stay.
   */
  async undo(ctx: EventContext): Promise<void> {
    const ops: AddOp[] = [];
    this.rules.collect(ctx, ops);
    const back = ops.filter((op) => op.value === undefined);
    for (const op of back) op.count = -op.count;
    if (back.length) await this.safeAdd(back);
  }

  /** True when some record rule adds the size of accepted messages (`count: bytes`). */
  countsBytes(): boolean {
    return this.rules.countsBytes;
  }

  /**
   * A message was received and accepted: its `count: bytes` rules add `ctx.bytes`. They run
   * after the data stage's policies, which therefore see the bytes of the messages before this one.
   */
  async messageBytes(ctx: EventContext): Promise<void> {
    const ops: AddOp[] = [];
    this.rules.collectBytes(ctx, ops);
    if (ops.length) await this.safeAdd(ops);
  }

  /** Reads the counts the stage's policies need and evaluates them. */
  private decide(ctx: EventContext, cid: string, skipPolicies: boolean, protect: boolean): Maybe<StageResult> {
    const rules = this.policies[ctx.stage];
    if (rules.length === 0 || skipPolicies) return { verdict: 'continue', shadow: [] };
    const items = applicable(rules, ctx);
    const queries: CountQuery[] = [];
    const slot: number[] = [];
    const counts: Array<number | undefined> = new Array(items.length);
    // A gauge kept in another process (a cluster's primary) answers later, in the counts' batch.
    let gauges: Array<Promise<void>> | undefined;
    items.forEach((it, i) => {
      if (it.key === undefined) return;
      const p = it.policy;
      if (p.gauge) {
        const n = this.sessions.countAt(ctx.client!, p.mask);
        if (typeof n === 'number') counts[i] = n;
        else (gauges ??= []).push(n.then((v) => void (counts[i] = v)));
      } else {
        slot.push(i);
        const q = this.query(p.series!, it.key, p.startv, p.endv, ctx, p);
        if (p.above !== undefined && !p.shadow) q.above = p.above; // a shared store makes a count near it exact
        queries.push(q);
      }
    });
    const conclude = (res: readonly number[] | undefined): Maybe<StageResult> => {
      res?.forEach((c, j) => (counts[slot[j]!] = c));
      return this.conclude(ctx, cid, items, counts, protect);
    };
    if (!queries.length && !gauges) return conclude(undefined);
    const now = this.immediate;
    if (now && !gauges) {
      let res: number[];
      try {
        res = now.countManyNow(queries);
      } catch (err) {
        return this.countFailed(err) ?? conclude(undefined);
      }
      return conclude(res);
    }
    const all = gauges ? Promise.all([this.store.countMany(queries), ...gauges]).then((r) => r[0]) : this.store.countMany(queries);
    return all.then(conclude, (err: unknown) => this.countFailed(err) ?? conclude(undefined));
  }

  /** Counts the store could not give: noted; on_error: tempfail refuses the event (an invalid key does not). */
  private countFailed(err: unknown): StageResult | undefined {
    this.noteStoreFailure(err);
    return this.onError === 'tempfail' && !(err instanceof InvalidKeyError) ? { verdict: 'tempfail', shadow: [], storeFailure: true } : undefined;
  }

  /** The policies evaluated on the counts: firings logged, and when a count refuses for now, when it frees up. */
  private conclude(ctx: EventContext, cid: string, items: NonNullable<StageResult['seen']>['items'], counts: Array<number | undefined>, protect: boolean): Maybe<StageResult> {
    const decision: StageResult = evaluate(items, counts, protect);
    decision.seen = { items, counts };
    for (const f of decision.shadow) this.fire(ctx, cid, f, f.policy.shadow ? 'shadow' : 'protected');
    const f = decision.fired;
    if (!f) {
      if (this.logger.isLevelEnabled('debug')) this.logger.debug({ cid, client: ctx.ip, stage: ctx.stage, decision: 'continue' }, 'no policy fired');
      return decision;
    }
    this.fire(ctx, cid, f, 'enforce');
    if (decision.verdict === 'tempfail' && f.key !== undefined && f.policy.above !== undefined && !f.policy.gauge) {
      return after(this.retryAfter(f.policy, f.key, f.policy.above, ctx), (seconds) => {
        decision.retryAfter = seconds;
        return decision;
      });
    }
    return decision;
  }

  /** A count query for a policy's key; address-keyed series get the parsed address along (no second parse). */
  private query(series: string, key: string, startv: number, endv: number, ctx: EventContext, p: CompiledPolicy): CountQuery {
    const q: CountQuery = { series, key, startv, endv };
    if (ctx.client && p.seriesType !== 'string') {
      q.address = ctx.client;
      q.mask = p.mask ?? (ctx.client.family === 4 ? 32 : 128);
    }
    return q;
  }

  /** A firing: logged and counted, then handed to onFiring (alerts). */
  private fire(ctx: EventContext, cid: string, f: Firing, mode: FiringMode): void {
    this.log(ctx, cid, f.policy.name, f.policy.action, mode, f.key, f.count, f.policy.above);
    if (!this.onFiring) return;
    const e: FiringEvent = { at: this.clock.now(), cid, stage: ctx.stage, mode, policy: f.policy, client: ctx.client, ip: ctx.ip };
    if (f.key !== undefined) e.key = f.key;
    if (f.count !== undefined) e.count = f.count;
    this.onFiring(e);
  }

  /** A firing's key counted per window, 0 up to the policy's last window (none for client lists and the sessions gauge). */
  async windowCounts(e: Pick<FiringEvent, 'policy' | 'key' | 'client' | 'ip' | 'stage'>): Promise<number[] | undefined> {
    const qs = this.windowQueries(e);
    return qs && this.store.countMany(qs);
  }

  private windowQueries(e: Pick<FiringEvent, 'policy' | 'key' | 'client' | 'ip' | 'stage'>): CountQuery[] | undefined {
    const p = e.policy;
    if (p.series === undefined || p.gauge || e.key === undefined) return undefined;
    const ctx: EventContext = { stage: e.stage, client: e.client, ip: e.ip };
    const qs: CountQuery[] = [];
    for (let v = 0; v <= p.endv; v++) qs.push(this.query(p.series, e.key, v, v, ctx, p));
    return qs;
  }

  /** Seconds until the count that fired frees up; undefined when it cannot be told (or the store failed). */
  private retryAfter(p: CompiledPolicy, key: string, above: number, ctx: EventContext): Maybe<number | undefined> {
    if (p.interval <= 0) return undefined;
    const qs = this.windowQueries({ policy: p, key, client: ctx.client, ip: ctx.ip, stage: ctx.stage })!;
    const free = (per: number[]): number | undefined => {
      const ms = p.interval * 1000;
      return secondsUntilFree(per, p.startv, p.endv, above, p.interval, ms - (this.clock.now() % ms));
    };
    const now = this.immediate;
    if (!now) return this.store.countMany(qs).then(free, () => undefined);
    try {
      return free(now.countManyNow(qs));
    } catch {
      return undefined;
    }
  }

  private log(ctx: EventContext, cid: string, policy: string, action: string, mode: FiringMode, key?: string, count?: number, above?: number): void {
    const rec: FiredRecord = { at: this.clock.now(), cid, client: ctx.ip, stage: ctx.stage, policy, action, mode };
    if (key !== undefined) rec.key = key;
    if (count !== undefined) rec.count = count;
    if (above !== undefined) rec.above = above;
    this.recent.push(rec);
    if (this.recent.length > 200) this.recent.shift();
    const k = `${policy}\t${action}\t${mode}`;
    this.decisionCounts.set(k, (this.decisionCounts.get(k) ?? 0) + 1);
    this.logger.info({ cid, client: ctx.ip, stage: ctx.stage, policy, action, mode, key, count, above }, FIRING_MESSAGES[mode]);
  }

  /** The recorder's clock (epoch ms). */
  now(): number {
    return this.clock.now();
  }

  recentFirings(limit = 50): FiredRecord[] {
    return this.recent.slice(-limit).reverse();
  }

  storeFailureCount(): number {
    return this.storeFailures;
  }

  /** False when the store failed (an invalid key is logged, not a store failure); at once with a store in this process. */
  private safeAdd(ops: AddOp[]): Maybe<boolean> {
    const failed = (err: unknown): boolean => {
      this.noteStoreFailure(err);
      return err instanceof InvalidKeyError;
    };
    const now = this.immediate;
    if (!now) return this.store.addMany(ops).then(() => true, failed);
    try {
      now.addManyNow(ops);
      return true;
    } catch (err) {
      return failed(err);
    }
  }

  private noteStoreFailure(err: unknown): void {
    if (err instanceof InvalidKeyError) {
      // A key the series refuses is a bug in how it was derived, not a store failure: it must
      // neither trip on_error nor hide real store failures in the metric.
      this.invalidKeys++;
      const now = this.clock.now();
      if (now - this.lastInvalidLog > 10_000) {
        this.lastInvalidLog = now;
        this.logger.warn({ err: err.message, invalid_keys: this.invalidKeys }, 'series key refused');
      }
      return;
    }
    this.storeFailures++;
    const now = this.clock.now();
    if (now - this.lastStoreLog > 10_000) {
      this.lastStoreLog = now;
      this.logger.error({ err, on_error: this.onError, failures: this.storeFailures }, 'series store failed');
    }
  }
}
