/** Any journal line (JournalLine's keys in the order the journal writes them, strings of any characters). */
import fc from 'fast-check';
import { STAGES } from '../../../src/config/vocabulary.js';
import { JOURNAL_EVENTS, JOURNAL_FRONTS, type JournalLine } from '../../../src/journal/line.js';

const text = fc.string({ unit: 'binary', maxLength: 12 });
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
export const journalLineArb: fc.Arbitrary<JournalLine> = fc
  .record({
    t: fc.integer({ min: 0, max: 2 ** 45 }),
    e: fc.constantFrom(...JOURNAL_EVENTS),
    c: text,
    f: fc.constantFrom(...JOURNAL_FRONTS),
    a: maybe(text),
    h: maybe(text),
    u: maybe(text),
    m: maybe(text),
    r: maybe(text),
    b: maybe(fc.integer({ min: 0, max: 2 ** 40 })),
    n: maybe(fc.integer({ min: 0, max: 100_000 })),
    g: maybe(fc.integer({ min: 0, max: 2 ** 45 })),
    s: maybe(fc.constantFrom(...STAGES)),
    d: maybe(fc.constant(1)),
    l: maybe(fc.constant(1)),
    o: maybe(fc.constantFrom('accept', 'tarpit', 'tempfail', 'reject')),
    y: maybe(text),
    w: maybe(fc.array(text, { maxLength: 3 })),
    p: maybe(fc.dictionary(text, fc.integer({ min: 0, max: 1e9 }), { maxKeys: 4 })),
    k: maybe(fc.array(fc.oneof(fc.tuple(text, text), fc.tuple(text, text, fc.double({ noNaN: true, noDefaultInfinity: true }))), { maxLength: 3 })),
    x: maybe(fc.constant(1)),
  })
  .map((r) => {
    // the key order the journal builds lines in, without the absent keys
    const l: Record<string, unknown> = { v: 1 };
    for (const [k, v] of Object.entries(r)) if (v !== undefined) l[k] = v;
    return l as unknown as JournalLine;
  });
