/** What the session engine tells the journal, line by line, and the line format read back. */
import fc from 'fast-check';
import { journalLineArb } from './line-arbitrary.js';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { seriesDefinitions } from '../../../src/config/catalogue.js';
import { createEngine } from '../../../src/audit/engine.js';
import { SessionTracker } from '../../../src/audit/sessions.js';
import { setRecipient, setSender } from '../../../src/audit/session.js';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import { parseClientAddress } from '../../../src/series/address.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import type { SeriesStore } from '../../../src/store/types.js';
import { Journal } from '../../../src/journal/journal.js';
import { formatLine, LineProblem, parseLine, type JournalLine } from '../../../src/journal/line.js';

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);

/** The store seam only, without answering at once: every count and add is awaited. */
function awaitedOnly(m: MemoryStore): SeriesStore {
  return {
    kind: 'remote-like',
    add: (series, key, count) => m.add(series, key, count),
    addMany: (ops) => m.addMany(ops),
    count: (series, key, startv, endv) => m.count(series, key, startv, endv),
    countMany: (qs) => m.countMany(qs),
    removeItem: (series, key) => m.removeItem(series, key),
    top: (series, opts) => m.top(series, opts),
    close: () => m.close(),
  };
}

/** `remote`: the store answers later, as Redis or a cluster's primary does (the engine awaits it). */
function setup(lean = false, remote = false) {
  const config = parseConfigText(
    `relay: { url: "dir:/tmp/x" }
series:
  c: { type: cidr, interval: 60, windows: 2 }
  senders: { type: string, interval: 60, windows: 2 }
  fails: { type: string, interval: 60, windows: 2 }
record:
  - { on: connect, series: c }
  - { on: mail, series: senders, key: "{mail_from_domain}", count: 2 }
  - { on: auth_fail, series: fails, key: "{auth_user}" }
policies:
  - { name: watch, on: connect, series: c, mask: 24, above: 0, action: reject, mode: shadow }
  - { name: per-ip, on: connect, series: c, mask: 32, above: 1, action: tempfail }
`,
    'journal-test.yaml',
  );
  const clock = new ManualClock(T0);
  const registry = new SeriesRegistry(clock);
  for (const d of seriesDefinitions(config)) registry.define(d);
  const lines: JournalLine[] = [];
  const journal = new Journal(clock, (l) => lines.push(l), lean);
  const memory = new MemoryStore(registry);
  const store = remote ? awaitedOnly(memory) : memory;
  const { engine } = createEngine({ config, store, sessions: new SessionTracker(clock), clock, logger: pino({ level: 'silent' }), hostname: () => 'gw.test', journal });
  return { engine, lines, clock, journal };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('the journal of the session engine', () => {
  it('one line per call a front makes: the facts, the verdict, the counts the policies saw and the adds', async () => {
    const { engine, lines, clock } = setup();
    const a = engine.open('smtp', 'cid1', parseClientAddress('192.0.2.7'));
    expect(await engine.stage(a, 'connect')).toEqual({ action: 'continue' });
    a.helo = 'mx.example';
    await engine.stage(a, 'helo'); // nothing to record or evaluate: still a line
    setSender(a, 'Someone@Example.ORG');
    await engine.stage(a, 'mail');
    setRecipient(a, 'b@example.net');
    await engine.stage(a, 'rcpt');
    engine.refused(a, 'rcpt'); // the backend said no
    engine.delivered(a);
    clock.advance(1500);
    const attempt = await engine.authAttempt(a, 'Bob');
    attempt.undo();
    engine.changeClient(a, parseClientAddress('2001:db8::1'));
    engine.close(a);
    await settle();
    expect(lines).toEqual([
      { v: 1, t: T0, e: 'open', c: 'cid1', f: 'smtp', a: '192.0.2.7' },
      { v: 1, t: T0, e: 'connect', c: 'cid1', f: 'smtp', a: '192.0.2.7', w: ['watch'], p: { watch: 1, 'per-ip': 1 }, k: [['c', '192.0.2.7']] },
      { v: 1, t: T0, e: 'helo', c: 'cid1', f: 'smtp', a: '192.0.2.7', h: 'mx.example' },
      { v: 1, t: T0, e: 'mail', c: 'cid1', f: 'smtp', a: '192.0.2.7', h: 'mx.example', m: 'someone@example.org', k: [['senders', 'example.org', 2]] },
      { v: 1, t: T0, e: 'rcpt', c: 'cid1', f: 'smtp', a: '192.0.2.7', h: 'mx.example', m: 'someone@example.org', r: 'b@example.net' },
      { v: 1, t: T0, e: 'reject', c: 'cid1', f: 'smtp', a: '192.0.2.7', h: 'mx.example', m: 'someone@example.org', r: 'b@example.net', s: 'rcpt' },
      { v: 1, t: T0, e: 'delivered', c: 'cid1', f: 'smtp', a: '192.0.2.7' },
      { v: 1, t: T0 + 1500, e: 'auth_fail', c: 'cid1', f: 'smtp', a: '192.0.2.7', h: 'mx.example', u: 'bob', k: [['fails', 'bob']] },
      { v: 1, t: T0 + 1500, e: 'auth_ok', c: 'cid1', f: 'smtp', a: '192.0.2.7' },
      { v: 1, t: T0 + 1500, e: 'client', c: 'cid1', f: 'smtp', a: '2001:db8::1' },
      { v: 1, t: T0 + 1500, e: 'close', c: 'cid1', f: 'smtp', a: '2001:db8::1' },
    ]);
  });

  it('a refusal names its policy and is followed by the reject event the engine derived from it', async () => {
    const { engine, lines } = setup();
    for (const cid of ['c1', 'c2']) await engine.stage(engine.open('milter', cid, parseClientAddress('192.0.2.7')), 'connect');
    await settle();
    const second = lines.filter((l) => l.c === 'c2');
    expect(second.map((l) => l.e)).toEqual(['open', 'connect', 'reject']);
    expect(second[1]).toMatchObject({ f: 'milter', o: 'tempfail', y: 'per-ip', p: { 'per-ip': 2 }, w: ['watch'] });
    expect(second[2]).toMatchObject({ e: 'reject', s: 'connect', d: 1 });
    expect(second[2]!.o).toBeUndefined();
  });

  it('a client gone before its decision (from a store elsewhere) is marked, with what the policies decided', async () => {
    const { engine, lines } = setup(false, true);
    await engine.stage(engine.open('smtp', 'c1', parseClientAddress('192.0.2.7')), 'connect');
    const s = engine.open('smtp', 'c2', parseClientAddress('192.0.2.7'));
    const v = engine.stage(s, 'connect');
    engine.close(s); // while the recorder was deciding
    expect(await v).toEqual({ action: 'continue' });
    const line = lines.find((l) => l.c === 'c2' && l.e === 'connect')!;
    expect(line).toMatchObject({ l: 1, o: 'tempfail', y: 'per-ip' });
  });

  it('is decided at once with the store in this process, and the same as with a store that answers later', async () => {
    const run = async (remote: boolean) => {
      const { engine, lines } = setup(false, remote);
      for (let i = 0; i < 4; i++) {
        const s = engine.open('smtp', `c${i}`, parseClientAddress(i % 2 ? '192.0.2.7' : '2001:db8::7'));
        const v = engine.stage(s, 'connect');
        expect(v instanceof Promise).toBe(remote && i % 2 === 1); // the IPv6 client has nothing to count here
        if ((await v).action === 'continue') {
          s.mailFrom = 'a@example.org';
          s.mailFromDomain = 'example.org';
          await engine.stage(s, 'mail');
        }
        engine.close(s);
        await settle();
      }
      return lines;
    };
    const here = await run(false);
    expect(here.some((l) => l.o === 'tempfail')).toBe(true);
    expect(here.some((l) => l.e === 'reject')).toBe(true);
    expect(await run(true)).toEqual(here);
  });

  it('a lean journal (replay\'s record of its own run) keeps the decisions and firings, not the facts, counts and adds', async () => {
    const { engine, lines } = setup(true);
    for (const cid of ['c1', 'c2']) {
      const s = engine.open('smtp', cid, parseClientAddress('192.0.2.7'));
      s.helo = 'mx.example';
      await engine.stage(s, 'connect');
    }
    await settle();
    const connect = lines.filter((l) => l.e === 'connect');
    expect(connect[1]).toEqual({ v: 1, t: T0, e: 'connect', c: 'c2', f: 'smtp', a: '192.0.2.7', o: 'tempfail', y: 'per-ip', w: ['watch'] });
    expect(connect[0]).toEqual({ v: 1, t: T0, e: 'connect', c: 'c1', f: 'smtp', a: '192.0.2.7', w: ['watch'] });
  });

  it('without a sink the engine builds no lines', async () => {
    const { engine, lines, journal } = setup();
    journal.setSink(undefined);
    await engine.stage(engine.open('smtp', 'c1', parseClientAddress('192.0.2.7')), 'connect');
    expect(lines).toEqual([]);
    expect(journal.enabled).toBe(false);
  });
});

describe('journal lines', () => {
  it('read back what was written', async () => {
    const { engine, lines } = setup();
    await engine.stage(engine.open('smtp', 'c1', parseClientAddress('2001:db8::7')), 'connect');
    for (const l of lines) expect(parseLine(formatLine(l).slice(0, -1))).toEqual(l);
  });

  it('are written as JSON.stringify writes them, whatever the strings hold (escapes, control characters, surrogates)', () => {
    fc.assert(
      fc.property(journalLineArb, (l) => {
        expect(formatLine(l)).toBe(`${JSON.stringify(l)}\n`);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['{"v":1,"t":1,"e":"connect","c":"x","f":"smtp"', 'cut short (a line torn by a crash?)'],
    ['hello', 'not JSON'],
    ['[1]', 'not a JSON object'],
    ['{"t":1,"e":"connect","c":"x","f":"smtp"}', 'no format version "v"'],
    ['{"v":2,"t":1,"e":"connect","c":"x","f":"smtp"}', 'format version 2 is not known (this reader knows 1)'],
    ['{"v":1,"t":"1","e":"connect","c":"x","f":"smtp"}', '"t" is not a time in ms'],
    ['{"v":1,"t":1,"e":"bounce","c":"x","f":"smtp"}', '"e" is not a known event: "bounce"'],
    ['{"v":1,"t":1,"e":"connect","f":"smtp"}', '"c" (connection id) is missing'],
    ['{"v":1,"t":1,"e":"connect","c":"x","f":"lmtp"}', '"f" is not a front: "lmtp"'],
    ['{"v":1,"t":1,"e":"connect","c":"x","f":"smtp","a":7}', '"a" is not a string'],
    ['{"v":1,"t":1,"e":"connect","c":"x","f":"smtp","o":"defer"}', '"o" is not an outcome: "defer"'],
    ['{"v":1,"t":1,"e":"reject","c":"x","f":"smtp"}', 'a reject event without "s" (the stage refused)'],
    ['{"v":1,"t":1,"e":"data","c":"x","f":"policy","n":-1}', '"n" is not a number of recipients'],
    ['{"v":1,"t":1,"e":"ban","c":"x","f":"smtp","a":"192.0.2.0/24","g":9}', 'a ban line not from "admin"'],
    ['{"v":1,"t":1,"e":"connect","c":"admin","f":"admin","a":"192.0.2.1"}', '"connect" is not an operator\'s control'],
    ['{"v":1,"t":1,"e":"lift","c":"admin","f":"admin"}', 'a lift line without "a" (the prefix)'],
    ['{"v":1,"t":1,"e":"ban","c":"admin","f":"admin","a":"192.0.2.0/24"}', 'a ban line without "g" (when it ends)'],
    ['{"v":1,"t":1,"e":"ban","c":"admin","f":"admin","a":"192.0.2.0/24","g":"soon"}', '"g" is not a time in ms'],
  ])('%s is refused: %s', (text, message) => {
    const r = parseLine(text);
    expect(r).toBeInstanceOf(LineProblem);
    expect((r as LineProblem).message).toBe(message);
  });

  it('keys it does not know are kept and ignored (later versions add optional fields)', () => {
    const r = parseLine('{"v":1,"t":5,"e":"data","c":"x","f":"policy","z":1234,"ban":{"for":600}}');
    expect(r).toMatchObject({ e: 'data', f: 'policy', z: 1234 });
  });
});
