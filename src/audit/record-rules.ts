/**
 * The adds an event makes, compiled once per config: the `record:` rules of its stage (a fixed
 * amount, the message's recipients or size, or a distinct series' value, to each series of the
 * rule, keyed by the client's address or an expanded template) and the built-in monitors
 * (connections at connect, rejections at reject, receptions when a message is delivered).
 */
import { seriesCatalogue } from '../config/catalogue.js';
import type { Config } from '../config/types.js';
import type { MonitorEvent, Stage } from '../config/vocabulary.js';
import { expandTemplate, type EventContext } from '../policy/evaluate.js';
import type { ClientAddress } from '../series/address.js';
import type { AddOp } from '../store/types.js';

interface CompiledRecord {
  series: string[];
  key?: string;
  /** A fixed number, or the message's recipients (`rcpts`) or size (`bytes`). */
  count: number | 'rcpts' | 'bytes';
  /** Distinct series: the value template (every series of such a rule is distinct). */
  value?: string;
  cidr: boolean[];
  /** Some series of the rule are keyed by the address (cidr), some by the key template (string). */
  cidrs: boolean;
  strings: boolean;
}

export class RecordRules {
  private readonly records = new Map<Stage, CompiledRecord[]>();
  /** The data stage's `count: bytes` rules: added once the message was received (collectBytes). */
  private readonly bytesRecords: CompiledRecord[] = [];
  private readonly monitors: Readonly<Record<MonitorEvent, readonly string[]>>;

  constructor(config: Config) {
    const catalogue = seriesCatalogue(config);
    const types = catalogue.types;
    for (const r of config.record) {
      const cidr = r.series.map((s) => types.get(s)?.type !== 'string');
      const rec: CompiledRecord = { series: r.series, count: r.count ?? 1, cidr, cidrs: cidr.includes(true), strings: cidr.includes(false) };
      if (r.key !== undefined) rec.key = r.key;
      if (r.value !== undefined) rec.value = r.value;
      if (rec.count === 'bytes') {
        this.bytesRecords.push(rec);
        continue;
      }
      const list = this.records.get(r.on) ?? [];
      list.push(rec);
      this.records.set(r.on, list);
    }
    this.monitors = catalogue.monitors;
  }

  /** True when some record rule adds the size of accepted messages (`count: bytes`). */
  get countsBytes(): boolean {
    return this.bytesRecords.length > 0;
  }

  /** True when an event of `stage` may add something (a record rule or a monitor). */
  adds(stage: Stage): boolean {
    if (this.records.has(stage)) return true;
    if (stage === 'connect') return this.monitors.connections.length > 0;
    if (stage === 'reject') return this.monitors.rejections.length > 0;
    return false;
  }

  /** The adds an event makes: its record rules and the built-in monitors. */
  collect(ctx: EventContext, ops: AddOp[]): void {
    // A client without an address has nothing to count in address-keyed series.
    const address = ctx.client;
    for (const r of this.records.get(ctx.stage) ?? []) ruleAdds(r, ctx, ops);
    if (!address) return;
    if (ctx.stage === 'connect') for (const series of this.monitors.connections) ops.push({ series, key: address.text, count: 1, address });
    if (ctx.stage === 'reject') for (const series of this.monitors.rejections) ops.push({ series, key: address.text, count: 1, address });
  }

  /** The `count: bytes` adds of a message received and accepted. */
  collectBytes(ctx: EventContext, ops: AddOp[]): void {
    for (const r of this.bytesRecords) ruleAdds(r, ctx, ops);
  }

  /** A built-in monitor event for the client (both families' series; the other ignores it). */
  monitorAdds(event: MonitorEvent, client: ClientAddress): AddOp[] {
    return this.monitors[event].map((series) => ({ series, key: client.text, count: 1, address: client }));
  }
}

/** The adds of one record rule for an event: its amount (or value) to each of its series. */
function ruleAdds(r: CompiledRecord, ctx: EventContext, ops: AddOp[]): void {
  const count = typeof r.count === 'number' ? r.count : r.count === 'rcpts' ? (ctx.rcpts ?? 0) : (ctx.bytes ?? 0);
  if (count === 0) return; // a message of no recipients or no bytes adds nothing
  const address = ctx.client;
  // the string series' key, expanded once; undefined: nothing to count there for this event
  const key = r.key !== undefined && r.strings ? expandTemplate(r.key, ctx) : undefined;
  if (key === undefined && !(address && r.cidrs)) return;
  let value: string | undefined;
  if (r.value !== undefined) {
    value = expandTemplate(r.value, ctx);
    if (value === undefined) return; // nothing to count for this event (e.g. the null sender's domain)
  }
  for (let i = 0; i < r.series.length; i++) {
    let op: AddOp | undefined;
    if (r.cidr[i]) {
      if (address) op = { series: r.series[i]!, key: address.text, count, address };
    } else if (key !== undefined) op = { series: r.series[i]!, key, count };
    if (!op) continue;
    if (value !== undefined) op.value = value;
    ops.push(op);
  }
}
