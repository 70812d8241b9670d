/**
 * Replay: recorded journal lines, in time order, through a candidate config's engine on a
 * virtual clock, compared with what was recorded (or with a baseline config's replay of the
 * same lines). Pure but for reading the journal; the CLI (cli/replay.ts) prints the result.
 */
import type { Config } from '../config/types.js';
import { parsePrefix, formatPrefix } from '../series/address.js';
import { ADMIN, type JournalLine } from '../journal/line.js';
import { readJournal, type ReadProblem, type ReadStats } from '../journal/reader.js';
import { readJournalThreaded, readWorkerScript } from '../journal/threaded-reader.js';
import { NOT_DECIDED, RecordedSide, RunSide, UNREACHED, type Answer, type Side } from './sides.js';
import { OUTCOMES, type PolicyFirings, type Tally } from './tally.js';

export interface ReplayOptions {
  candidate: Config;
  /** Compare with this config's replay instead of the recorded decisions. */
  baseline?: Config;
  /** Journal streams (journal/reader.ts: journalStreams). */
  streams: readonly string[][];
  from?: number;
  to?: number;
  onProblem(p: ReadProblem): void;
}

export interface ChangedEvent {
  t: number;
  cid: string;
  client?: string;
  event: string;
  before: string;
  after: string;
  policy?: string;
}

export interface PolicyRow {
  policy: string;
  before: PolicyFirings;
  after: PolicyFirings;
}

export interface ReplayResult {
  candidate: string;
  /** The baseline config's file, or "recorded". */
  before: string;
  read: ReadStats;
  /** Good lines replayed, and the sessions they belong to. */
  events: number;
  sessions: number;
  first?: number;
  last?: number;
  /** Lines earlier than a line before them (replayed at the later time), and by how much at most. */
  outOfOrder: { lines: number; maxMs: number };
  /** The candidate's longest series coverage: counts start empty, so decisions this soon after the first event may differ. */
  warmupMs: number;
  decisions: {
    /** Events a client was answered for, decided on both sides. */
    compared: number;
    changed: number;
    changedInWarmup: number;
    /** Same outcome, decided by another policy. */
    otherPolicy: number;
    /** Events the candidate (or the baseline) would never have seen: the session had ended, or the command was refused. */
    unreachedAfter: number;
    unreachedBefore: number;
    /** `stage: before → after` → events. */
    transitions: Record<string, number>;
    examples: ChangedEvent[];
  };
  policies: PolicyRow[];
  sessionChanges: {
    /** `before → after` (accepted, tarpitted, refused) → sessions. */
    transitions: Record<string, number>;
    /** The prefixes (the top /24s, then the top /64s) of the sessions the candidate answers more harshly, and more kindly. */
    harsher: Array<{ prefix: string; sessions: number }>;
    kinder: Array<{ prefix: string; sessions: number }>;
  };
}

const MAX_EXAMPLES = 10;
const TOP_PREFIXES = 10;

/** The client's /24 (IPv4) or /64 (IPv6). */
function prefixOf(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const p = parsePrefix(`${address}/${address.includes(':') ? 64 : 24}`);
  return p ? formatPrefix(p.family, p.words, p.mask) : undefined;
}

/** The TOP_PREFIXES /24s with the most sessions, then the TOP_PREFIXES /64s. */
function top(m: Map<string, number>): Array<{ prefix: string; sessions: number }> {
  const sorted = [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const family = (v6: boolean) => sorted.filter(([p]) => p.includes(':') === v6).slice(0, TOP_PREFIXES);
  return [...family(false), ...family(true)].map(([prefix, sessions]) => ({ prefix, sessions }));
}

/** The longest `interval × windows` of the series the config defines, in ms. */
function coverageMs(config: Config): number {
  let ms = 0;
  for (const s of Object.values(config.series)) ms = Math.max(ms, s.interval * s.windows * 1000);
  for (const m of config.monitors) ms = Math.max(ms, m.interval * m.windows * 1000);
  return ms;
}

function policyRows(configs: readonly Config[], before: Tally, after: Tally): PolicyRow[] {
  const names: string[] = [];
  for (const c of configs) for (const p of c.policies) names.push(p.name);
  names.push(...before.policies.keys(), ...after.policies.keys());
  const zero: PolicyFirings = { enforce: 0, shadow: 0 };
  return [...new Set(names)].map((policy) => ({ policy, before: before.policies.get(policy) ?? zero, after: after.policies.get(policy) ?? zero }));
}

export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const read: ReadStats = { files: 0, lines: 0, skipped: 0, outside: 0 };
  const warmupMs = coverageMs(opts.candidate);
  const d: ReplayResult['decisions'] = { compared: 0, changed: 0, changedInWarmup: 0, otherPolicy: 0, unreachedAfter: 0, unreachedBefore: 0, transitions: {}, examples: [] };
  const sessionTransitions: Record<string, number> = {};
  const harsher = new Map<string, number>();
  const kinder = new Map<string, number>();
  /** Sessions seen and not yet closed: their client address. */
  const open = new Map<string, string | undefined>();
  let before: Side | undefined;
  let after: RunSide | undefined;
  let events = 0;
  let sessions = 0;
  let first: number | undefined;
  let last = -Infinity;
  const outOfOrder = { lines: 0, maxMs: 0 };

  const finish = (cid: string): void => {
    const b = before!.tally.take(cid);
    const a = after!.tally.take(cid);
    const client = open.get(cid);
    open.delete(cid);
    if (a === b) return;
    const key = `${OUTCOMES[b]} → ${OUTCOMES[a]}`;
    sessionTransitions[key] = (sessionTransitions[key] ?? 0) + 1;
    const prefix = prefixOf(client);
    if (prefix === undefined) return;
    const m = a > b ? harsher : kinder;
    m.set(prefix, (m.get(prefix) ?? 0) + 1);
  };

  const compare = (line: JournalLine, b: Answer, a: Answer): void => {
    if (b === NOT_DECIDED || a === NOT_DECIDED) return;
    if (b === UNREACHED || a === UNREACHED) {
      if (a === UNREACHED && b !== UNREACHED) d.unreachedAfter++;
      else if (b === UNREACHED && a !== UNREACHED) d.unreachedBefore++;
      return;
    }
    d.compared++;
    if (b.o === a.o) {
      if (b.y !== a.y) d.otherPolicy++;
      return;
    }
    d.changed++;
    if (line.t < first! + warmupMs) d.changedInWarmup++;
    const key = `${line.e}: ${b.o} → ${a.o}`;
    d.transitions[key] = (d.transitions[key] ?? 0) + 1;
    if (d.examples.length < MAX_EXAMPLES) {
      const ex: ChangedEvent = { t: line.t, cid: line.c, event: line.e, before: b.o, after: a.o };
      if (line.a !== undefined) ex.client = line.a;
      const policy = a.y ?? b.y;
      if (policy !== undefined) ex.policy = policy;
      d.examples.push(ex);
    }
  };

  // the journal is read and parsed in a thread of its own, when the build has its script
  const script = readWorkerScript();
  const batches = script ? readJournalThreaded(opts.streams, opts, read, script) : readJournal(opts.streams, opts, read);
  for await (const batch of batches) {
    for (const line of batch) {
      if (first === undefined) {
        first = line.t;
        last = line.t;
        before = opts.baseline ? new RunSide(opts.baseline, first) : new RecordedSide();
        after = new RunSide(opts.candidate, first);
      }
      events++;
      if (line.t < last) {
        outOfOrder.lines++;
        outOfOrder.maxMs = Math.max(outOfOrder.maxMs, last - line.t);
      } else last = line.t;
      if (line.f === ADMIN) {
        // a ban made or lifted by hand: no session's, and no decision to compare
        before!.feed(line, last);
        after!.feed(line, last);
        continue;
      }
      if (line.e === 'open' && open.has(line.c)) finish(line.c); // an id used again: the old session is over
      if (!open.has(line.c)) {
        sessions++;
        open.set(line.c, line.a);
      } else if (line.e === 'client') open.set(line.c, line.a);
      const bRes = before!.feed(line, last);
      const b = bRes instanceof Promise ? await bRes : bRes;
      const aRes = after!.feed(line, last);
      const a = aRes instanceof Promise ? await aRes : aRes;
      compare(line, b, a);
      if (line.e === 'close') finish(line.c);
    }
  }
  for (const cid of [...open.keys()]) finish(cid);

  const result: ReplayResult = {
    candidate: opts.candidate.file,
    before: opts.baseline?.file ?? 'recorded',
    read,
    events,
    sessions,
    outOfOrder,
    warmupMs,
    decisions: d,
    policies: before && after ? policyRows(opts.baseline ? [opts.candidate, opts.baseline] : [opts.candidate], before.tally, after.tally) : [],
    sessionChanges: { transitions: sessionTransitions, harsher: top(harsher), kinder: top(kinder) },
  };
  if (first !== undefined) {
    result.first = first;
    result.last = last;
  }
  return result;
}
