/**
 * The worker's IpcStore and IpcSessions against the primary's BatchApplier, wired in process
 * through a JSON round trip (what node:cluster's channel does): the store contract, batching of
 * one event-loop turn into one message, order (an add counts before a later count), the
 * sessions gauge and a dead worker's sessions; at most one batch that asks in flight, the rest
 * queued behind it.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SessionTracker } from '../../../src/audit/sessions.js';
import { BatchApplier } from '../../../src/cluster/apply.js';
import { IpcBatcher, IpcSessions, IpcStore } from '../../../src/cluster/ipc-store.js';
import { readWorkerMessage, type WorkerMessage } from '../../../src/cluster/messages.js';
import { InvalidKeyError, StoreError } from '../../../src/errors.js';
import { parseClientAddress, type ClientAddress } from '../../../src/series/address.js';
import { ManualClock } from '../../../src/series/clock.js';
import { isDistinct } from '../../../src/series/index.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { contractRegistry, storeContract } from '../../helpers/store-contract.js';

interface Primary {
  clock: ManualClock;
  memory: MemoryStore;
  sessions: SessionTracker;
  applier: BatchApplier;
}

function primary(): Primary {
  const clock = new ManualClock(1_800_000_000_000);
  const reg = contractRegistry(clock);
  const memory = new MemoryStore(reg);
  const sessions = new SessionTracker(clock);
  return { clock, memory, sessions, applier: new BatchApplier(memory, sessions, pino({ level: 'silent' })) };
}

/** A worker's batcher whose batches reach `p` (as worker `id`) through JSON, answered a turn later. */
function worker(p: Primary, id = 1): { batcher: IpcBatcher; store: IpcStore; sessions: IpcSessions; sent: WorkerMessage[] } {
  const sent: WorkerMessage[] = [];
  const batcher: IpcBatcher = new IpcBatcher((m) => {
    sent.push(m);
    const msg = readWorkerMessage(JSON.parse(JSON.stringify(m)));
    if (msg?.ag !== 'batch') throw new Error('not a batch');
    setImmediate(() => {
      void Promise.resolve(p.applier.apply(id, msg.ops)).then((results) => {
        if (msg.id) batcher.answer(msg.id, JSON.parse(JSON.stringify(results)) as typeof results);
      });
    });
  });
  const distinct = (series: string): boolean | undefined => (p.memory.registry.has(series) ? isDistinct(p.memory.registry.get(series)) : undefined);
  return { batcher, store: new IpcStore(batcher, distinct), sessions: new IpcSessions(batcher), sent };
}

const addr = (ip: string): ClientAddress => parseClientAddress(ip)!;

/**
 * A worker whose batches reach `p` (as worker `id`) only when the test calls deliver(): the
 * primary's answers are as late as the test wants (and calls wait behind them for an hour).
 */
function slowWorker(p: Primary, id: number) {
  const sent: WorkerMessage[] = [];
  const queue: WorkerMessage[] = [];
  const batcher: IpcBatcher = new IpcBatcher((m) => {
    sent.push(m);
    queue.push(JSON.parse(JSON.stringify(m)) as WorkerMessage);
  }, 3_600_000);
  /** Applies and answers every batch sent so far, in order. */
  const deliver = async (): Promise<void> => {
    for (const raw of queue.splice(0)) {
      const msg = readWorkerMessage(raw);
      if (msg?.ag !== 'batch') throw new Error('not a batch');
      const results = await p.applier.apply(id, msg.ops);
      if (msg.id) batcher.answer(msg.id, JSON.parse(JSON.stringify(results)) as typeof results);
    }
  };
  /** Turns of the event loop until `n` batches were sent (bounded: the batcher sends at setImmediate). */
  const sentCount = async (n: number): Promise<void> => {
    for (let i = 0; i < 100 && sent.length < n; i++) await new Promise((r) => setImmediate(r));
    expect(sent).toHaveLength(n);
  };
  return { batcher, store: new IpcStore(batcher), sessions: new IpcSessions(batcher), sent, deliver, sentCount };
}

storeContract('cluster IPC (worker → primary memory store)', async () => {
  const p = primary();
  const w = worker(p);
  return { store: w.store, clock: p.clock, done: () => w.store.close() };
});

describe('IpcStore', () => {
  it('sends the adds and counts of one event-loop turn as one batch, adds first', async () => {
    const p = primary();
    const w = worker(p);
    // what the recorder does at a stage: addMany, await it, then countMany
    await w.store.addMany([
      { series: 'conn', key: '192.0.2.1', count: 1 },
      { series: 'helo', key: 'mx.example', count: 1 },
    ]);
    const counts = await w.store.countMany([
      { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 0 },
      { series: 'helo', key: 'mx.example', startv: 0, endv: 3 },
    ]);
    expect(counts).toEqual([1, 1]);
    expect(w.sent).toHaveLength(1);
    expect(w.batcher.roundTrips).toBe(1);
    // the recorder's adds alone want no answer
    await w.store.addMany([{ series: 'conn', key: '192.0.2.2', count: 1 }]);
    await new Promise((r) => setImmediate(r));
    expect(w.sent[1]).toMatchObject({ ag: 'batch', id: 0 });
    expect(w.batcher.roundTrips).toBe(1);
  });

  it('is exact across workers: adds and counts of each turn apply in order, as one', async () => {
    const p = primary();
    const workers = [worker(p, 1), worker(p, 2), worker(p, 3)];
    const limit = 10;
    // 30 "connects" from one /24, spread over three workers, all in flight at once
    const admitted = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const w = workers[i % 3]!;
        await w.store.addMany([{ series: 'conn', key: `192.0.2.${i}`, count: 1 }]);
        const [n] = await w.store.countMany([{ series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 0 }]);
        return n! <= limit;
      }),
    );
    expect(admitted.filter(Boolean)).toHaveLength(limit);
    expect(await p.memory.count('conn', '192.0.2.0/24')).toBe(30);
  });

  it('applies batches in arrival order, also two that arrive in one read (no interleaving)', async () => {
    const p = primary();
    const batch = (): Parameters<BatchApplier['apply']>[1] => [
      ['o', '192.0.2.1'],
      ['a', 'conn', '192.0.2.1', 1],
      ['c', 'conn', '192.0.2.1', 0, 0],
      ['g', '192.0.2.1', -1],
    ];
    const first = p.applier.apply(1, batch());
    const second = p.applier.apply(1, batch());
    expect(await first).toEqual([1, 1]);
    expect(await second).toEqual([2, 2]);
  });

  it('answers a session batch at once from a store in the primary, and an admin batch once its results are in', async () => {
    const p = primary();
    const sessions = p.applier.apply(1, [['a', 'conn', '192.0.2.1', 1], ['c', 'conn', '192.0.2.1', 0, 0], ['g', '192.0.2.1', -1], ['c', 'conn', 'bad key', 0, 0]]);
    expect(sessions).not.toBeInstanceOf(Promise);
    expect(sessions).toEqual([1, 0, { error: { code: 'AG_KEY_INVALID', message: expect.any(String) as string } }]);
    const admin = p.applier.apply(1, [['c', 'conn', '192.0.2.1', 0, 0], ['t', 'conn', { mask: 24 }]]);
    expect(admin).toBeInstanceOf(Promise);
    expect(await admin).toEqual([1, [{ key: '192.0.2.0/24', count: 1 }]]);
  });

  it('fails a bad key with InvalidKeyError, and every call once the primary is gone', async () => {
    const p = primary();
    const w = worker(p);
    await expect(w.store.count('conn', 'not-an-ip')).rejects.toBeInstanceOf(InvalidKeyError);
    expect(await w.store.count('conn', '192.0.2.1')).toBe(0);
    const pending = w.store.count('conn', '192.0.2.1');
    w.batcher.fail('the primary process is gone');
    await expect(pending).rejects.toBeInstanceOf(StoreError);
    await expect(w.store.count('conn', '192.0.2.1')).rejects.toThrow('the primary process is gone');
  });

  it('fails the waiting calls when the channel refuses a send', async () => {
    const dead = new IpcBatcher(() => {
      throw new Error('channel closed');
    });
    await expect(new IpcStore(dead).count('conn', '192.0.2.1')).rejects.toThrow(/primary process is unreachable: channel closed/);
  });
});

describe('IpcBatcher: one round trip in flight', () => {
  it('queues what is called while a batch that asks is unanswered and sends it as one message with the answer', async () => {
    const p = primary();
    const w = slowWorker(p, 1);
    const first = w.store.countMany([{ series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 0 }]);
    await w.sentCount(1);
    // three sessions' stages while the first batch is unanswered: adds, opens, counts
    const later = [1, 2, 3].map(async (i) => {
      w.sessions.opened(addr(`192.0.2.${i}`));
      await w.store.addMany([{ series: 'conn', key: `192.0.2.${i}`, count: 1 }]);
      return w.store.countMany([{ series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 0 }]);
    });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(w.sent).toHaveLength(1);
    expect(w.batcher.pending()).toBe(1 + 9); // one batch in flight, 9 ops queued
    await w.deliver();
    expect(await first).toEqual([0]);
    await w.sentCount(2);
    expect(w.sent[1]).toMatchObject({ ag: 'batch', id: 2 });
    expect((w.sent[1] as Extract<WorkerMessage, { ag: 'batch' }>).ops).toHaveLength(9);
    await w.deliver();
    // the queue went in call order: each session's open and add, then the three counts: each count sees all three adds
    expect((w.sent[1] as Extract<WorkerMessage, { ag: 'batch' }>).ops.map((o) => o[0]).join('')).toBe('oaoaoaccc');
    expect(await Promise.all(later)).toEqual([[3], [3], [3]]);
    expect(w.batcher.roundTrips).toBe(2);
    expect(p.sessions.total()).toBe(3);
  });

  it('an add that rides on a later message is counted by a count asked after it, in the same worker and in another', async () => {
    const p = primary();
    const a = slowWorker(p, 1);
    const b = worker(p, 2);
    const inFlight = a.store.count('conn', '198.51.100.1');
    await a.sentCount(1);
    await a.store.addMany([{ series: 'conn', key: '198.51.100.7', count: 1 }]); // resolves at once, queued behind the count
    const same = a.store.count('conn', '198.51.100.0/24');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(a.sent).toHaveLength(1);
    expect(await p.memory.count('conn', '198.51.100.0/24')).toBe(0); // not sent yet
    await a.deliver();
    expect(await inFlight).toBe(0);
    await a.sentCount(2); // the add and the count, one message
    const other = b.store.count('conn', '198.51.100.0/24'); // asked once the add was sent, before the primary applied it
    await a.deliver();
    expect(await same).toBe(1);
    expect(await other).toBe(1);
  });

  it('does not hold calls behind a batch the primary is slow to answer for longer than its wait: they go, and answers may come in any order', async () => {
    const sent: WorkerMessage[] = [];
    const batcher = new IpcBatcher((m) => sent.push(m), 1);
    const store = new IpcStore(batcher);
    const slow = store.count('conn', '192.0.2.1'); // say, a Redis series while Redis stalls
    for (let i = 0; i < 100 && sent.length < 1; i++) await new Promise((r) => setImmediate(r));
    const next = store.count('helo', 'mx.example');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 1000 && sent.length < 2; i++) await new Promise((r) => setTimeout(r, 1));
    expect(sent.map((m) => (m as Extract<WorkerMessage, { ag: 'batch' }>).id)).toEqual([1, 2]);
    batcher.answer(2, [5]);
    expect(await next).toBe(5);
    batcher.answer(1, [7]);
    expect(await slow).toBe(7);
  });

  it('a batch answered with no results fails its calls, and what queued behind it still goes', async () => {
    const p = primary();
    const sent: WorkerMessage[] = [];
    const batcher = new IpcBatcher((m) => sent.push(m));
    const store = new IpcStore(batcher);
    const lost = store.count('conn', '192.0.2.1');
    for (let i = 0; i < 100 && sent.length < 1; i++) await new Promise((r) => setImmediate(r));
    const next = store.count('conn', '192.0.2.1');
    batcher.answer(1, []); // what the primary answers to a batch it cannot read
    await expect(lost).rejects.toThrow('fewer results');
    for (let i = 0; i < 100 && sent.length < 2; i++) await new Promise((r) => setImmediate(r));
    const second = sent[1] as Extract<WorkerMessage, { ag: 'batch' }>;
    expect(second.id).toBe(2);
    batcher.answer(2, await p.applier.apply(1, second.ops));
    expect(await next).toBe(0);
  });
});

describe('IpcSessions', () => {
  it('keeps the gauge in the primary: every worker sees every session; a dead worker’s sessions leave it', async () => {
    const p = primary();
    const a = worker(p, 1);
    const b = worker(p, 2);
    a.sessions.opened(addr('192.0.2.1'));
    a.sessions.opened(addr('192.0.2.1'));
    b.sessions.opened(addr('192.0.2.9'));
    b.sessions.opened(addr('2001:db8::1'));
    expect(await a.sessions.countAt(addr('192.0.2.1'), undefined)).toBe(2);
    expect(await b.sessions.countAt(addr('192.0.2.1'), 24)).toBe(3);
    expect(await b.sessions.countAt(addr('2001:db8::2'), 64)).toBe(1);
    b.sessions.closed(addr('192.0.2.9'));
    a.sessions.closed(addr('192.0.2.9')); // not opened through worker 1: ignored
    expect(await a.sessions.countAt(addr('192.0.2.1'), 24)).toBe(2);
    expect(p.applier.releaseWorker(1)).toBe(2);
    expect(p.sessions.total()).toBe(1);
    expect(await b.sessions.countAt(addr('192.0.2.1'), 24)).toBe(0);
  });
});
