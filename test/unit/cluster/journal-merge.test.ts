import { describe, expect, it } from 'vitest';
import { JournalMerge } from '../../../src/cluster/journal-merge.js';
import { ManualClock } from '../../../src/series/clock.js';

const line = (t: number, c: string): string => `{"v":1,"t":${t},"e":"connect","c":"${c}","f":"smtp"}\n`;

function merge(opts: { holdMs?: number; maxHeld?: number } = {}) {
  const clock = new ManualClock(1_000_000);
  const out: string[] = [];
  const m = new JournalMerge({ clock, write: (l) => out.push(l), ...opts });
  const cids = () => out.map((l) => /"c":"(\w+)"/.exec(l)![1]);
  return { clock, m, out, cids };
}

describe("the primary's merge of its workers' journal lines", () => {
  it('holds lines holdMs after their time and writes them in time order across workers', () => {
    const { clock, m, cids } = merge({ holdMs: 100 });
    m.add([line(1_000_010, 'a2'), line(1_000_030, 'a4')]); // worker 1's batch
    m.add([line(1_000_000, 'b1'), line(1_000_020, 'b3'), line(1_000_090, 'b5')]); // worker 2's, sent later
    m.tick();
    expect(cids()).toEqual([]); // nothing is 100 ms old yet
    clock.advance(135);
    m.tick();
    expect(cids()).toEqual(['b1', 'a2', 'b3', 'a4']);
    expect(m.size).toBe(1);
    clock.advance(100);
    m.add([line(1_000_040, 'late')]); // later than the hold: written at the next tick, after what was written
    m.tick();
    expect(cids()).toEqual(['b1', 'a2', 'b3', 'a4', 'late', 'b5']);
    m.flush();
  });

  it('writes everything held at flush, and past its bound; skips what is no text', () => {
    const { m, cids } = merge({ holdMs: 1000, maxHeld: 3 });
    m.add([line(5, 'x'), 7, line(3, 'y')]);
    expect(cids()).toEqual([]);
    m.add([line(4, 'z'), line(9, 'w')]);
    expect(cids()).toEqual(['y', 'z', 'x', 'w']); // 4 held > 3: all written, in time order
    m.add([line(2, 'v')]);
    m.flush();
    expect(cids()).toEqual(['y', 'z', 'x', 'w', 'v']);
    expect(m.size).toBe(0);
  });
});
