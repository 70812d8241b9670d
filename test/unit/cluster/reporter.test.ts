import { describe, expect, it } from 'vitest';
import { WorkerReporter } from '../../../src/cluster/reporter.js';
import type { WorkerMessage } from '../../../src/cluster/messages.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function reporter(opts: { flushBytes?: number; maxBytes?: number } = {}) {
  const sent: WorkerMessage[] = [];
  const r = new WorkerReporter({ send: (m) => void sent.push(m), flushMs: 3_600_000, ...opts });
  return { r, sent };
}

describe("a worker's reports to the primary", () => {
  it('journal lines wait for more (bytes or time); a verdict, firing or ban request goes at the end of the turn and takes them along', async () => {
    const { r, sent } = reporter({ flushBytes: 100 });
    r.journalLine('a'.repeat(40));
    r.journalLine('b'.repeat(40));
    await turn();
    expect(sent).toEqual([]);
    r.decision({ at: 1, cid: 'c1', front: 'smtp', stage: 'connect', client: '192.0.2.1', action: 'tempfail' });
    r.ban({ issue: { prefix: '192.0.2.1/32', spec: { forMs: 1000, factor: 2, maxMs: 8000 }, policy: 'p', cid: 'c1' } });
    await turn();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ ag: 'report', journal: ['a'.repeat(40), 'b'.repeat(40)], decisions: [{ cid: 'c1' }], bans: [{ issue: { prefix: '192.0.2.1/32' } }] });
    expect(sent[0]).not.toHaveProperty('firings');
    r.journalLine('c'.repeat(60));
    r.journalLine('d'.repeat(60)); // 120 bytes waiting ≥ 100: sent at the end of the turn
    await turn();
    expect(sent[1]).toEqual({ ag: 'report', journal: ['c'.repeat(60), 'd'.repeat(60)] });
  });

  it('drops journal lines past its bound, and when the channel is gone, and counts them', async () => {
    const { r, sent } = reporter({ maxBytes: 50 });
    r.journalLine('x'.repeat(30));
    r.journalLine('y'.repeat(30));
    expect(r.dropped).toBe(1);
    r.flush();
    expect(sent).toEqual([{ ag: 'report', journal: ['x'.repeat(30)] }]);
    const gone = new WorkerReporter({ send: () => { throw new Error('channel closed'); } });
    gone.journalLine('z');
    gone.flush();
    expect(gone.dropped).toBe(1);
    await turn();
  });
});
