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
import type { ClientAddress, Family } from '../series/address.js';
import { familyOf } from '../series/types.js';
import type { AddOp } from '../store/types.js';

interface CompiledRecord {
  series: string[];
  key?: string;
  /** A fixed number, or the message's recipients (`rcpts`) or size (`bytes`). */
  count: number | 'rcpts' | 'bytes';
  /** Distinct series: the value template (every series of such a rule is distinct). */
  value?: string;
  cidr: boolean[];
  /** The address family of each series (0: a string series): an address adds to its own family's only. */
  family: Array<Family | 0>;
  /** Some series of the rule are keyed by the key template (string series). */
  strings: boolean;
}

export class RecordRules {
  private readonly records = new Map<Stage, CompiledRecord[]>();
  /** The data stage's `count: bytes` rules: added once the message was received (collectBytes). */
  private readonly bytesRecords: CompiledRecord[] = [];
  /** The built-in monitors' series of each event, by the family they count. */
  private readonly monitors: Record<MonitorEvent, Record<Family, string[]>>;

  constructor(config: Config) {
    const catalogue = seriesCatalogue(config);
    const types = catalogue.types;
    for (const r of config.record) {
      const family = r.series.map((s) => familyOf(types.get(s)?.type) ?? 0);
      const cidr = family.map((f) => f !== 0);
      const rec: CompiledRecord = { series: r.series, count: r.count ?? 1, cidr, family, strings: cidr.includes(false) };
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
    const of = (f: Family) => (names: readonly string[]) => names.filter((n) => familyOf(types.get(n)?.type) === f);
    const byFamily = (names: readonly string[]): Record<Family, string[]> => ({ 4: of(4)(names), 6: of(6)(names) });
    const m = catalogue.monitors;
    this.monitors = { connections: byFamily(m.connections), receptions: byFamily(m.receptions), rejections: byFamily(m.rejections) };
  }

  /** True when some record rule adds the size of accepted messages (`count: bytes`). */
  get countsBytes(): boolean {
    return this.bytesRecords.length > 0;
  }

  /** True when an event of `stage` may add something (a record rule or a monitor). */
  adds(stage: Stage): boolean {
    if (this.records.has(stage)) return true;
    const m = stage === 'connect' ? this.monitors.connections : stage === 'reject' ? this.monitors.rejections : undefined;
    return m !== undefined && m[4].length + m[6].length > 0;
  }

  /** The adds an event makes: its record rules and the built-in monitors. */
  collect(ctx: EventContext, ops: AddOp[]): void {
    // A client without an address has nothing to count in address-keyed series.
    const address = ctx.client;
    for (const r of this.records.get(ctx.stage) ?? []) ruleAdds(r, ctx, ops);
    if (!address) return;
    if (ctx.stage === 'connect') for (const series of this.monitors.connections[address.family]) ops.push({ series, key: address.text, count: 1, address });
    if (ctx.stage === 'reject') for (const series of this.monitors.rejections[address.family]) ops.push({ series, key: address.text, count: 1, address });
  }

  /** The `count: bytes` adds of a message received and accepted. */
  collectBytes(ctx: EventContext, ops: AddOp[]): void {
    for (const r of this.bytesRecords) ruleAdds(r, ctx, ops);
  }

  /** A built-in monitor event for the client (its family's series). */
  monitorAdds(event: MonitorEvent, client: ClientAddress): AddOp[] {
    return this.monitors[event][client.family].map((series) => ({ series, key: client.text, count: 1, address: client }));
  }
}

/** The adds of one record rule for an event: its amount (or value) to each of its series. */
function ruleAdds(r: CompiledRecord, ctx: EventContext, ops: AddOp[]): void {
  const count = typeof r.count === 'number' ? r.count : r.count === 'rcpts' ? (ctx.rcpts ?? 0) : (ctx.bytes ?? 0);
  if (count === 0) return; // a message of no recipients or no bytes adds nothing
  const address = ctx.client;
  // the string series' key, expanded once; undefined: nothing to count there for this event
  const key = r.key !== undefined && r.strings ? expandTemplate(r.key, ctx) : undefined;
  if (key === undefined && !(address && r.family.includes(address.family))) return;
  let value: string | undefined;
  if (r.value !== undefined) {
    value = expandTemplate(r.value, ctx);
    if (value === undefined) return; // nothing to count for this event (e.g. the null sender's domain)
  }
  for (let i = 0; i < r.series.length; i++) {
    let op: AddOp | undefined;
    if (r.cidr[i]) {
      if (address && address.family === r.family[i]) op = { series: r.series[i]!, key: address.text, count, address };
    } else if (key !== undefined) op = { series: r.series[i]!, key, count };
    if (!op) continue;
    if (value !== undefined) op.value = value;
    ops.push(op);
  }
}
