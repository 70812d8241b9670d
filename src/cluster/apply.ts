/**
 * The primary's side of a worker batch: applies its ops in order to the real store (memory, or
 * memory + Redis) and the sessions gauge, and collects one result per answered op. Runs of adds
 * and of counts go to the store as one addMany / countMany each. Remembers which sessions each
 * worker opened, so a worker that dies takes its sessions out of the gauge.
 */
import type { Logger } from 'pino';
import type { SessionTracker } from '../audit/sessions.js';
import { parseClientAddress } from '../series/address.js';
import type { Maybe } from '../maybe.js';
import { immediateStore, type AddOp, type CountQuery, type SeriesStore } from '../store/types.js';
import { toWireError, type Op, type OpResult } from './messages.js';

const ERROR_LOG_EVERY_MS = 10_000;

export class BatchApplier {
  /** Sessions open per worker: address → count. */
  private readonly open = new Map<number, Map<string, number>>();
  private addErrors = 0;
  private lastAddErrorLog = -Infinity;
  /** Batches applied, and ops in them (for the admin API and the benchmark). */
  batches = 0;
  ops = 0;

  constructor(
    private readonly store: SeriesStore,
    private readonly sessions: SessionTracker,
    private readonly logger: Logger,
  ) {}

  /**
   * Every store call is made before anything is awaited: the memory store does its work when
   * called, so the ops of this batch apply in order and no other batch (the next one from the
   * same worker may arrive in the same read) runs in between. Results are collected after: at
   * once when the store is in this process (ImmediateStore) and the batch has only adds, counts
   * and the gauge (what sessions send), else once every result is in.
   */
  apply(worker: number, ops: readonly Op[]): Maybe<OpResult[]> {
    this.batches++;
    this.ops += ops.length;
    const now = immediateStore(this.store);
    const results: Array<Maybe<OpResult[]>> = [];
    let later = false;
    const one = (p: Promise<OpResult>): void => {
      later = true;
      results.push(p.then((r) => [r], (err: unknown) => [toWireError(err)]));
    };
    let i = 0;
    while (i < ops.length) {
      const op = ops[i]!;
      switch (op[0]) {
        case 'a': {
          const adds: AddOp[] = [];
          for (; i < ops.length && ops[i]![0] === 'a'; i++) {
            const [, series, key, count, value] = ops[i] as Extract<Op, { 0: 'a' }>;
            adds.push(value === undefined ? { series, key, count } : { series, key, count, value });
          }
          if (!now) this.store.addMany(adds).catch((err: unknown) => this.addFailed(err, worker));
          else {
            try {
              now.addManyNow(adds);
            } catch (err) {
              this.addFailed(err, worker);
            }
          }
          continue;
        }
        case 'c': {
          const queries: CountQuery[] = [];
          for (; i < ops.length && ops[i]![0] === 'c'; i++) {
            const [, series, key, startv, endv] = ops[i] as Extract<Op, { 0: 'c' }>;
            queries.push({ series, key, startv, endv });
          }
          const failed = (err: unknown): OpResult[] => queries.map(() => toWireError(err));
          if (!now) {
            later = true;
            results.push(this.store.countMany(queries).catch(failed));
            continue;
          }
          try {
            results.push(now.countManyNow(queries));
          } catch (err) {
            results.push(failed(err));
          }
          continue;
        }
        case 'A':
          one(this.store.add(op[1], op[2], op[3]).then(() => 0));
          break;
        case 'r':
          one(this.store.removeItem(op[1], op[2]));
          break;
        case 't':
          one(this.store.top(op[1], op[2]));
          break;
        case 'o':
          this.opened(worker, op[1]);
          break;
        case 'x':
          this.closed(worker, op[1]);
          break;
        case 'g': {
          const client = parseClientAddress(op[1]);
          results.push([client ? this.sessions.countAt(client, op[2] < 0 ? undefined : op[2]) : 0]);
          break;
        }
      }
      i++;
    }
    return later ? Promise.all(results).then((r) => r.flat()) : (results as OpResult[][]).flat();
  }

  private opened(worker: number, ip: string): void {
    const client = parseClientAddress(ip);
    if (!client) return;
    let mine = this.open.get(worker);
    if (!mine) this.open.set(worker, (mine = new Map()));
    mine.set(client.text, (mine.get(client.text) ?? 0) + 1);
    this.sessions.opened(client);
  }

  private closed(worker: number, ip: string): void {
    const client = parseClientAddress(ip);
    const mine = this.open.get(worker);
    const n = client ? mine?.get(client.text) : undefined;
    if (!client || !mine || n === undefined) return; // not opened through this worker
    if (n <= 1) mine.delete(client.text);
    else mine.set(client.text, n - 1);
    this.sessions.closed(client);
  }

  /** A worker is gone: its open sessions leave the gauge. Returns how many there were. */
  releaseWorker(worker: number): number {
    const mine = this.open.get(worker);
    this.open.delete(worker);
    let released = 0;
    for (const [ip, n] of mine ?? []) {
      const client = parseClientAddress(ip);
      for (let k = 0; k < n; k++) this.sessions.closed(client);
      released += n;
    }
    return released;
  }

  /** Adds answer nothing (the worker went on at once): a failure is logged here, at most every 10 s. */
  private addFailed(err: unknown, worker: number): void {
    this.addErrors++;
    const now = Date.now();
    if (now - this.lastAddErrorLog < ERROR_LOG_EVERY_MS) return;
    this.lastAddErrorLog = now;
    this.logger.warn({ err: err instanceof Error ? err.message : String(err), worker, failed_batches: this.addErrors }, 'adds from a worker failed');
  }
}
