/** Journal lines in column batches (what the reading thread hands a replay): the lines come back whole, but for the counts and adds. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchDecoder, BatchEncoder, batchBuffers } from '../../../src/journal/line-batch.js';
import type { JournalLine } from '../../../src/journal/line.js';
import { journalLineArb } from './line-arbitrary.js';

/** A line as a batch carries it: without `p` and `k`. */
function carried(l: JournalLine): JournalLine {
  const { p: _p, k: _k, ...rest } = l;
  return rest;
}

describe('journal line batches', () => {
  it('give back every line, batch after batch, whatever the strings hold, the tables starting again on the way', () => {
    fc.assert(
      fc.property(fc.array(fc.array(journalLineArb, { maxLength: 20 }), { maxLength: 6 }), fc.integer({ min: 1, max: 40 }), (batches, maxStrings) => {
        const enc = new BatchEncoder(maxStrings);
        const dec = new BatchDecoder();
        for (const lines of batches) {
          const batch = structuredClone(enc.encode(lines)); // as postMessage copies it
          expect(dec.decode(batch)).toEqual(lines.map(carried));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('send a string once until the table starts again', () => {
    const line = (c: string): JournalLine => ({ v: 1, t: 1, e: 'connect', c, f: 'smtp', a: '192.0.2.1', h: 'mx.example' });
    const enc = new BatchEncoder(4);
    const first = enc.encode([line('c1'), line('c2')]);
    expect(first.reset).toBe(false);
    expect(first.strings).toEqual(['c1', '192.0.2.1', 'mx.example', 'c2']);
    const second = enc.encode([line('c2')]);
    expect(second.reset).toBe(true); // four strings: the limit
    expect(second.strings).toEqual(['c2', '192.0.2.1', 'mx.example']);
    const third = enc.encode([line('c2')]);
    expect(third.strings).toEqual([]);
    const dec = new BatchDecoder();
    expect([first, second, third].flatMap((b) => dec.decode(b)).map((l) => l.c)).toEqual(['c1', 'c2', 'c2', 'c2']);
  });

  it('name every typed array, so postMessage can transfer them', () => {
    const b = new BatchEncoder().encode([{ v: 1, t: 5, e: 'rcpt', c: 'x', f: 'milter', b: 12 }]);
    const buffers = batchBuffers(b);
    // every typed array the batch holds, each with a buffer of its own
    const typed = [...Object.values(b), ...Object.values(b.ids)].filter((v): v is Uint8Array => ArrayBuffer.isView(v));
    expect(typed.length).toBeGreaterThanOrEqual(15);
    expect(new Set(buffers)).toEqual(new Set(typed.map((a) => a.buffer)));
    expect(new Set(buffers).size).toBe(typed.length);
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(b, buffers);
    port1.close();
    port2.close();
    expect(b.t.length).toBe(0); // transferred: detached here
  });
});
