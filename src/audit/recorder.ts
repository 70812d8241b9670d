/**
 * The recorder: for a stage event, derive keys, add to series (record rules and built-in
 * monitors), read counts, ask the policy engine. It never throws into the SMTP layer: a store
 * failure follows store.on_error (local is handled inside the store; accept skips the
 * policies that need counts; tempfail refuses the event with a 4xx).
 */
import type { Logger } from 'pino';
import { seriesCatalogue } from '../config/catalogue.js';
import type { Config } from '../config/types.js';
import type { MonitorEvent, Stage } from '../config/vocabulary.js';
import type { SeriesStore, AddOp, CountQuery } from '../store/types.js';
import type { Clock } from '../series/clock.js';
import { compilePolicies, type CompiledPolicies, type CompiledPolicy } from '../policy/compile.js';
import { applicable, evaluate, expandTemplate, secondsUntilFree, type Decision, type EventContext, type Firing } from '../policy/evaluate.js';
import type { SessionTracker } from './sessions.js';
import { InvalidKeyError } from '../errors.js';
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

interface CompiledRecord {
  series: string[];
  key?: string;
  /** A fixed number, or the message's recipients (`rcpts`) or size (`bytes`). */
  count: number | 'rcpts' | 'bytes';
  /** Distinct series: the value template (every series of such a rule is distinct). */
  value?: string;
  cidr: boolean[];
}

export class Recorder {
  private policies!: CompiledPolicies;
  private records!: Map<Stage, CompiledRecord[]>;
  /** The data stage's `count: bytes` rules: added once the message was received (see messageBytes). */
  private bytesRecords: CompiledRecord[] = [];
  private monitorNames!: Readonly<Record<MonitorEvent, readonly string[]>>;
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

  constructor(
    config: Config,
    private readonly store: SeriesStore,
    private readonly sessions: SessionTracker,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {
    this.configure(config);
  }

  /** Applies a (reloaded) config: compiled once here, never per event. */
  configure(config: Config): void {
    this.policies = compilePolicies(config);
    const catalogue = seriesCatalogue(config);
    const types = catalogue.types;
    this.onError = config.store.on_error;
    const records = new Map<Stage, CompiledRecord[]>();
    const bytesRecords: CompiledRecord[] = [];
    for (const r of config.record) {
      const rec: CompiledRecord = { series: r.series, count: r.count ?? 1, cidr: r.series.map((s) => types.get(s)?.type !== 'string') };
      if (r.key !== undefined) rec.key = r.key;
      if (r.value !== undefined) rec.value = r.value;
      if (rec.count === 'bytes') {
        bytesRecords.push(rec);
        continue;
      }
      const list = records.get(r.on) ?? [];
      list.push(rec);
      records.set(r.on, list);
    }
    this.records = records;
    this.bytesRecords = bytesRecords;
    this.monitorNames = catalogue.monitors;
  }

  /**
   * Records the event's adds (record rules, monitors) and evaluates nothing: a banned client's
   * connect, refused before any policy runs, still counts.
   */
  async record(ctx: EventContext): Promise<void> {
    const ops: AddOp[] = [];
    this.collectAdds(ctx, ops);
    if (ops.length) await this.safeAdd(ops);
  }

  /** Adds a built-in monitor event for the client (both families' series; the other ignores it). */
  async monitor(event: MonitorEvent, client: ClientAddress | undefined): Promise<void> {
    if (!client) return;
    const ops = this.monitorNames[event].map((series) => ({ series, key: client.text, count: 1, address: client }));
    if (ops.length) await this.safeAdd(ops);
  }

  /**
   * True when the stage has nothing to record (no record rule, no monitor) and nothing to
   * evaluate: the caller may go on at once without calling stage().
   */
  passes(stage: Stage, skipPolicies = false): boolean {
    if (this.records.has(stage)) return false;
    if (stage === 'connect' && this.monitorNames.connections.length > 0) return false;
    if (stage === 'reject' && this.monitorNames.rejections.length > 0) return false;
    return skipPolicies || this.policies[stage].length === 0;
  }

  /** Records the event and evaluates the stage's policies. */
  async stage(ctx: EventContext, cid: string, opts: StageOptions = {}): Promise<StageResult> {
    const at = this.clock.now();
    const ops: AddOp[] = [];
    this.collectAdds(ctx, ops);
    if (ops.length && !(await this.safeAdd(ops))) {
      if (this.onError === 'tempfail') return { verdict: 'tempfail', shadow: [], storeFailure: true, at, adds: ops };
    }
    const res = await this.decide(ctx, cid, opts.skipPolicies === true, opts.protect === true);
    res.at = at;
    res.adds = ops;
    return res;
  }

  /**
   * Takes back the adds `stage()` made for an event (an AUTH attempt counted before the backend
   * was asked, whose password turned out right). Evaluates nothing. A value added to a distinct
   * series cannot be taken back (a set forgets nothing but by ageing): such adds stay.
   */
  async undo(ctx: EventContext): Promise<void> {
    const ops: AddOp[] = [];
    this.collectAdds(ctx, ops);
    const back = ops.filter((op) => op.value === undefined);
    for (const op of back) op.count = -op.count;
    if (back.length) await this.safeAdd(back);
  }

  /** True when some record rule adds the size of accepted messages (`count: bytes`). */
  countsBytes(): boolean {
    return this.bytesRecords.length > 0;
  }

  /**
   * A message was received and accepted: its `count: bytes` rules add `ctx.bytes`. They run
   * after the data stage's policies, which therefore see the bytes of the messages before this one.
   */
  async messageBytes(ctx: EventContext): Promise<void> {
    const ops: AddOp[] = [];
    for (const r of this.bytesRecords) this.ruleAdds(r, ctx, ops);
    if (ops.length) await this.safeAdd(ops);
  }

  /** The adds an event makes: its record rules and the built-in monitors. */
  private collectAdds(ctx: EventContext, ops: AddOp[]): void {
    // A client without an address has nothing to count in address-keyed series.
    const address = ctx.client;
    for (const r of this.records.get(ctx.stage) ?? []) this.ruleAdds(r, ctx, ops);
    if (!address) return;
    if (ctx.stage === 'connect') for (const series of this.monitorNames.connections) ops.push({ series, key: address.text, count: 1, address });
    if (ctx.stage === 'reject') for (const series of this.monitorNames.rejections) ops.push({ series, key: address.text, count: 1, address });
  }

  /** The adds of one record rule for an event: its amount (or value) to each of its series. */
  private ruleAdds(r: CompiledRecord, ctx: EventContext, ops: AddOp[]): void {
    const count = typeof r.count === 'number' ? r.count : r.count === 'rcpts' ? (ctx.rcpts ?? 0) : (ctx.bytes ?? 0);
    if (count === 0) return; // a message of no recipients or no bytes adds nothing
    let value: string | undefined;
    if (r.value !== undefined) {
      value = expandTemplate(r.value, ctx);
      if (value === undefined) return; // nothing to count for this event (e.g. the null sender's domain)
    }
    const address = ctx.client;
    for (let i = 0; i < r.series.length; i++) {
      let op: AddOp | undefined;
      if (r.cidr[i]) {
        if (address) op = { series: r.series[i]!, key: address.text, count, address };
      } else {
        const key = r.key ? expandTemplate(r.key, ctx) : undefined;
        if (key !== undefined) op = { series: r.series[i]!, key, count };
      }
      if (!op) continue;
      if (value !== undefined) op.value = value;
      ops.push(op);
    }
  }

  /** Reads the counts the stage's policies need and evaluates them. */
  private async decide(ctx: EventContext, cid: string, skipPolicies: boolean, protect: boolean): Promise<StageResult> {
    const rules = this.policies[ctx.stage];
    if (rules.length === 0 || skipPolicies) return { verdict: 'continue', shadow: [] };
    const items = applicable(rules, ctx);
    const queries: CountQuery[] = [];
    const slot: number[] = [];
    const counts: Array<number | undefined> = new Array(items.length);
    items.forEach((it, i) => {
      if (it.key === undefined) return;
      const p = it.policy;
      if (p.gauge) counts[i] = this.sessions.countAt(ctx.client!, p.mask);
      else {
        slot.push(i);
        queries.push(this.query(p.series!, it.key, p.startv, p.endv, ctx, p));
      }
    });
    if (queries.length) {
      try {
        const res = await this.store.countMany(queries);
        res.forEach((c, j) => (counts[slot[j]!] = c));
      } catch (err) {
        this.noteStoreFailure(err);
        if (this.onError === 'tempfail' && !(err instanceof InvalidKeyError)) return { verdict: 'tempfail', shadow: [], storeFailure: true };
      }
    }
    const decision: StageResult = evaluate(items, counts, protect);
    decision.seen = { items, counts };
    for (const f of decision.shadow) this.fire(ctx, cid, f, f.policy.shadow ? 'shadow' : 'protected');
    if (decision.fired) {
      const f = decision.fired;
      this.fire(ctx, cid, f, 'enforce');
      if (decision.verdict === 'tempfail' && f.key !== undefined && f.policy.above !== undefined && !f.policy.gauge) {
        decision.retryAfter = await this.retryAfter(f.policy, f.key, f.policy.above, ctx);
      }
    } else {
      this.logger.debug({ cid, client: ctx.ip, stage: ctx.stage, decision: 'continue' }, 'no policy fired');
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
    const p = e.policy;
    if (p.series === undefined || p.gauge || e.key === undefined) return undefined;
    const ctx: EventContext = { stage: e.stage, client: e.client, ip: e.ip };
    const qs: CountQuery[] = [];
    for (let v = 0; v <= p.endv; v++) qs.push(this.query(p.series, e.key, v, v, ctx, p));
    return this.store.countMany(qs);
  }

  private async retryAfter(p: CompiledPolicy, key: string, above: number, ctx: EventContext): Promise<number | undefined> {
    if (p.interval <= 0) return undefined;
    try {
      const per = (await this.windowCounts({ policy: p, key, client: ctx.client, ip: ctx.ip, stage: ctx.stage }))!;
      const ms = p.interval * 1000;
      return secondsUntilFree(per, p.startv, p.endv, above, p.interval, ms - (this.clock.now() % ms));
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

  /** False when the store failed (an invalid key is logged, not a store failure). */
  private async safeAdd(ops: AddOp[]): Promise<boolean> {
    try {
      await this.store.addMany(ops);
      return true;
    } catch (err) {
      this.noteStoreFailure(err);
      return err instanceof InvalidKeyError;
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
