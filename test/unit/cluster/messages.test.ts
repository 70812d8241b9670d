import { describe, expect, it } from 'vitest';
import { InvalidKeyError, StoreError, UnknownSeriesError, WindowRangeError } from '../../../src/errors.js';
import { answered, batchId, fromWireError, isWireError, readPrimaryMessage, readWorkerMessage, toWireError, type Op } from '../../../src/cluster/messages.js';

/** As node:cluster's JSON channel delivers it. */
const wire = <T>(v: T): unknown => JSON.parse(JSON.stringify(v));

describe('cluster messages', () => {
  it('reads every worker message back as sent', () => {
    const ops: Op[] = [
      ['a', 'conn', '192.0.2.1', 1],
      ['A', 'conn', '192.0.2.1', -1],
      ['a', 'rcpts', '192.0.2.1', 1, 'someone@example.net'],
      ['c', 'conn', '192.0.2.0/24', 0, 3],
      ['r', 'helo', 'x'],
      ['t', 'conn', { mask: 24, limit: 5 }],
      ['o', '2001:db8::1'],
      ['x', '2001:db8::1'],
      ['g', '192.0.2.1', -1],
    ];
    const msgs = [
      { ag: 'batch', id: 7, ops },
      { ag: 'hello' },
      { ag: 'ready', listen: [{ host: '127.0.0.1', port: 2525 }] },
      { ag: 'configured' },
      { ag: 'configured', error: 'bad' },
      { ag: 'drained' },
    ] as const;
    for (const m of msgs) expect(readWorkerMessage(wire(m))).toEqual(m);
    expect(ops.filter(answered).map((o) => o[0])).toEqual(['A', 'c', 'r', 't', 'g']);
  });

  it('ignores what is not a message: wrong kind, wrong arity, wrong types', () => {
    for (const raw of [
      null,
      'batch',
      [],
      { ag: 'nope' },
      { ag: 'batch', id: 1.5, ops: [] },
      { ag: 'batch', id: 1, ops: [['a', 'conn', '192.0.2.1']] },
      { ag: 'batch', id: 1, ops: [['a', 'conn', '192.0.2.1', 'one']] },
      { ag: 'batch', id: 1, ops: [['a', 'conn', '192.0.2.1', 1, 2]] },
      { ag: 'batch', id: 1, ops: [['c', 'conn', '192.0.2.1', 0, 0, 'x']] },
      { ag: 'batch', id: 1, ops: [['c', 'conn', 'k', 0, 0.5]] },
      { ag: 'batch', id: 1, ops: [['z', 'conn']] },
      { ag: 'batch', id: 1, ops: [['g', '192.0.2.1', null]] },
      { ag: 'ready', listen: 'x' },
      { ag: 'configured', error: 3 },
      { ag: 'stats', id: 'a', stats: {} },
    ]) {
      expect(readWorkerMessage(wire(raw))).toBeUndefined();
    }
    for (const raw of [{ ag: 'answer', id: 1 }, { ag: 'config', text: 1, file: 'f' }, { ag: 'drain', ms: 'x' }, { ag: 'stats?' }, { ag: 'batch', id: 1, ops: [] }]) {
      expect(readPrimaryMessage(wire(raw))).toBeUndefined();
    }
    expect(readPrimaryMessage(wire({ ag: 'drain', ms: 500 }))).toEqual({ ag: 'drain', ms: 500 });
    expect(readPrimaryMessage(wire({ ag: 'answer', id: 3, results: [1, { error: { code: 'AG_STORE', message: 'm' } }] }))).toBeDefined();
  });

  it('finds the id of a batch it cannot read, so the primary can answer it', () => {
    expect(batchId(wire({ ag: 'batch', id: 4, ops: [['a', 'conn', '192.0.2.1', null]] }))).toBe(4);
    expect(readWorkerMessage(wire({ ag: 'batch', id: 4, ops: [['a', 'conn', '192.0.2.1', null]] }))).toBeUndefined();
    for (const raw of [{ ag: 'batch', id: 0, ops: 'x' }, { ag: 'batch', id: 'x' }, { ag: 'stats', id: 4 }, [4], null]) expect(batchId(wire(raw))).toBeUndefined();
  });

  it('carries errors across with their code and the classes callers tell apart', () => {
    const back = (e: unknown) => {
      const w = wire(toWireError(e)) as ReturnType<typeof toWireError>;
      expect(isWireError(w)).toBe(true);
      return fromWireError(w);
    };
    const invalid = back(new InvalidKeyError('bad key "x"'));
    expect(invalid).toBeInstanceOf(InvalidKeyError);
    expect(invalid.message).toBe('bad key "x"');
    const unknown = back(new UnknownSeriesError('nope'));
    expect(unknown).toBeInstanceOf(UnknownSeriesError);
    expect(unknown.message).toBe('unknown series "nope"');
    expect(back(new WindowRangeError('start after end')).code).toBe('AG_WINDOW_RANGE');
    const plain = back(new Error('boom'));
    expect(plain).toBeInstanceOf(StoreError);
    expect(plain.message).toBe('boom');
    expect(isWireError(3)).toBe(false);
    expect(isWireError([])).toBe(false);
  });
});
