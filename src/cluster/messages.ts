/**
 * The messages between the primary and its workers (node:cluster IPC), declared once for both
 * sides. Pure: building and checking messages, and errors to and from their wire form.
 *
 * A worker's store and sessions gauge queue every call made in one event-loop turn as ops of
 * one `batch`; ops are applied in order, so an add is counted before a later count of the same
 * batch or of any later batch. Ops that answer (count, remove, top, gauge) get one result each,
 * in op order, in the `answer` with the batch's id; a batch with id 0 wants no answer.
 */
import { AuditgateError, ERROR_CODES, type ErrorCode, InvalidKeyError, InvalidValueError, StoreError, UnknownSeriesError } from '../errors.js';
import type { TopEntry, TopOptions } from '../series/types.js';
import type { HostPort, ListenAddress } from '../config/types.js';
import type { FiredRecord } from '../audit/recorder.js';
import type { ProxyStats } from '../smtp/proxy-session.js';
import type { RelayStats } from '../smtp/relay/types.js';
import type { DecisionEvent, RelayCommand } from '../events.js';
import type { Ban, BanChange, BanSpec } from '../bans/ban-list.js';
import type { FiringMode } from '../audit/recorder.js';
import type { Stage } from '../config/vocabulary.js';
import type { MtaFrontKind, MtaFrontStats } from '../mta/listener.js';

/** One store or gauge call. Answered: A, c, r, t, g. */
export type Op =
  /** add: series, key, count ('a': the worker went on at once; 'A': answered with 0 once applied); a distinct series' value */
  | ['a', string, string, number]
  | ['a', string, string, number, string]
  | ['A', string, string, number]
  /** count: series, key, startv, endv */
  | ['c', string, string, number, number]
  /** removeItem: series, key */
  | ['r', string, string]
  /** top: series, options */
  | ['t', string, TopOptions]
  /** a session from this client address opened / closed */
  | ['o', string]
  | ['x', string]
  /** the sessions gauge: client address, mask (-1: the exact address) */
  | ['g', string, number];

export type OpResult = number | TopEntry[] | WireError;

export interface WireError {
  error: { code: string; message: string };
}

/** What a worker reports of itself (summed by the primary for the admin API and /metrics). */
export interface WorkerStats {
  pid: number;
  /** SMTP sessions open in this worker. */
  open: number;
  front: ProxyStats;
  relay: RelayStats;
  decisions: Array<[string, number]>;
  recent: FiredRecord[];
  storeFailures: number;
  /** Batches sent, and those that waited for an answer (round trips). */
  batches: number;
  roundTrips: number;
  /** process.cpuUsage() in microseconds. */
  cpu: { user: number; system: number };
  /** Relay latencies observed since the last report. */
  latencies: Array<[RelayCommand, number]>;
  /** Connections this worker refused because their client was banned. */
  bansRefused: number;
  /** Journal lines this worker dropped before they reached the primary (reporter.ts). */
  journalDropped: number;
  /** The milter and policy-service fronts this worker runs, with their counters. */
  mta: Array<{ kind: MtaFrontKind; stats: MtaFrontStats }>;
}

export type { BanChange } from '../bans/ban-list.js';

/** A policy fired in a worker, for the primary's alerts (the policy by name: both run the same config). */
export interface WireFiring {
  at: number;
  cid: string;
  stage: Stage;
  mode: FiringMode;
  policy: string;
  key?: string;
  count?: number;
  /** The client's address text ('' when it has none). */
  ip: string;
}

/** A policy with `ban` fired in a worker: the primary issues the ban (escalated with the whole history) and tells every worker. */
export type WireBanRequest =
  | { issue: { prefix: string; spec: BanSpec; policy: string; cid: string } };

/**
 * What a worker tells the primary besides its store calls (reporter.ts): journal lines (formatted),
 * verdicts for the console, firings for alerts, ban requests. Fields are absent when empty.
 */
export interface WorkerReport {
  journal?: string[];
  decisions?: DecisionEvent[];
  firings?: WireFiring[];
  bans?: WireBanRequest[];
}

export type WorkerMessage =
  | { ag: 'batch'; id: number; ops: Op[] }
  /** The worker listens to the channel: the primary sends it the config. */
  | { ag: 'hello' }
  /** Listening: where (port 0 resolved), the MTA fronts' addresses too. */
  | { ag: 'ready'; listen: HostPort[]; milter?: ListenAddress[]; policy?: ListenAddress[] }
  | { ag: 'configured'; error?: string }
  /** The worker drained and sent its last batch; it exits next. */
  | { ag: 'drained' }
  | { ag: 'stats'; id: number; stats: WorkerStats }
  | ({ ag: 'report' } & WorkerReport);

export type PrimaryMessage =
  | { ag: 'answer'; id: number; results: OpResult[] }
  /** The config text the primary validated (at start and on reload), with its file name; at start, the bans in force. */
  | { ag: 'config'; text: string; file: string; bans?: Ban[] }
  /** Changes to the primary's ban list, in order. */
  | { ag: 'bans'; changes: BanChange[] }
  | { ag: 'drain'; ms: number }
  | { ag: 'stats?'; id: number };

/** True for the ops that get a result. */
export function answered(op: Op): boolean {
  const k = op[0];
  return k === 'A' || k === 'c' || k === 'r' || k === 't' || k === 'g';
}

const OP_ARITY: Record<Op[0], number> = { a: 4, A: 4, c: 5, r: 3, t: 3, o: 2, x: 2, g: 3 };

function isOp(v: unknown): v is Op {
  if (!Array.isArray(v) || typeof v[0] !== 'string' || !(v[0] in OP_ARITY)) return false;
  const arity = OP_ARITY[v[0] as Op[0]];
  if (v.length !== arity && !(v[0] === 'a' && v.length === arity + 1 && typeof v[4] === 'string')) return false;
  switch (v[0] as Op[0]) {
    case 'a':
    case 'A':
      return typeof v[1] === 'string' && typeof v[2] === 'string' && Number.isFinite(v[3]);
    case 'c':
      return typeof v[1] === 'string' && typeof v[2] === 'string' && Number.isInteger(v[3]) && Number.isInteger(v[4]);
    case 'r':
      return typeof v[1] === 'string' && typeof v[2] === 'string';
    case 't':
      return typeof v[1] === 'string' && typeof v[2] === 'object' && v[2] !== null;
    case 'o':
    case 'x':
      return typeof v[1] === 'string';
    case 'g':
      return typeof v[1] === 'string' && Number.isInteger(v[2]);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A worker's message, or undefined when `raw` is not one (anything else on the channel is ignored). */
export function readWorkerMessage(raw: unknown): WorkerMessage | undefined {
  if (!isRecord(raw)) return undefined;
  switch (raw.ag) {
    case 'batch':
      return Number.isInteger(raw.id) && Array.isArray(raw.ops) && raw.ops.every(isOp) ? (raw as WorkerMessage) : undefined;
    case 'ready':
      return Array.isArray(raw.listen) ? (raw as WorkerMessage) : undefined;
    case 'configured':
      return raw.error === undefined || typeof raw.error === 'string' ? (raw as WorkerMessage) : undefined;
    case 'stats':
      return Number.isInteger(raw.id) && isRecord(raw.stats) ? (raw as WorkerMessage) : undefined;
    case 'report':
      return (['journal', 'decisions', 'firings', 'bans'] as const).every((k) => raw[k] === undefined || Array.isArray(raw[k])) ? (raw as WorkerMessage) : undefined;
    case 'hello':
    case 'drained':
      return { ag: raw.ag };
    default:
      return undefined;
  }
}

/** The id of what looks like a batch that asks (when readWorkerMessage refused it), else undefined. */
export function batchId(raw: unknown): number | undefined {
  return isRecord(raw) && raw.ag === 'batch' && Number.isInteger(raw.id) && (raw.id as number) > 0 ? (raw.id as number) : undefined;
}

/** The primary's message, or undefined when `raw` is not one. */
export function readPrimaryMessage(raw: unknown): PrimaryMessage | undefined {
  if (!isRecord(raw)) return undefined;
  switch (raw.ag) {
    case 'answer':
      return Number.isInteger(raw.id) && Array.isArray(raw.results) ? (raw as PrimaryMessage) : undefined;
    case 'config':
      return typeof raw.text === 'string' && typeof raw.file === 'string' && (raw.bans === undefined || Array.isArray(raw.bans)) ? (raw as PrimaryMessage) : undefined;
    case 'bans':
      return Array.isArray(raw.changes) ? (raw as PrimaryMessage) : undefined;
    case 'drain':
      return Number.isFinite(raw.ms) ? (raw as PrimaryMessage) : undefined;
    case 'stats?':
      return Number.isInteger(raw.id) ? (raw as PrimaryMessage) : undefined;
    default:
      return undefined;
  }
}

export function toWireError(err: unknown): WireError {
  if (err instanceof AuditgateError) return { error: { code: err.code, message: err.message } };
  return { error: { code: 'AG_STORE', message: err instanceof Error ? err.message : String(err) } };
}

export function isWireError(r: OpResult | undefined): r is WireError {
  return typeof r === 'object' && r !== null && !Array.isArray(r) && 'error' in r;
}

/** The error a worker throws for a wire error: the same code, and the class callers tell apart (InvalidKeyError, InvalidValueError, UnknownSeriesError). */
export function fromWireError(w: WireError): AuditgateError {
  const { code, message } = w.error;
  if (code === 'AG_KEY_INVALID') return new InvalidKeyError(message);
  if (code === 'AG_VALUE_INVALID') return new InvalidValueError(message);
  if (code === 'AG_SERIES_UNKNOWN') return Object.assign(new UnknownSeriesError(''), { message });
  if (code !== 'AG_STORE' && code in ERROR_CODES) return new AuditgateError(code as ErrorCode, message);
  return new StoreError(message);
}
