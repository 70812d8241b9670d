/** The ban file: atomic saves, reload with expired bans dropped, a bad file moved aside. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BanList, type BanSpec } from '../../../src/bans/ban-list.js';
import { BanPersister } from '../../../src/bans/ban-persister.js';
import { parseClientAddress } from '../../../src/series/address.js';
import { ManualClock } from '../../../src/series/clock.js';

const T0 = 1_800_000_000_000;
const MIN = 60_000;
const logger = pino({ level: 'silent' });
const spec: BanSpec = { forMs: 10 * MIN, factor: 2, maxMs: 600 * MIN };

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-bans-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function setup(clock: ManualClock): { list: BanList; persister: BanPersister } {
  const list = new BanList(clock);
  return { list, persister: new BanPersister({ list, stateDir: dir, logger, clock, delayMs: 10 }) };
}

describe('BanPersister', () => {
  it('saves bans and history and restores them, dropping what expired meanwhile', async () => {
    const clock = new ManualClock(T0);
    const a = setup(clock);
    a.list.issue('192.0.2.0/24', spec, 'dha-ban', 'node-a'); // 10 min
    a.list.issue('192.0.2.0/24', spec, 'dha-ban'); // still active: unchanged
    a.list.put({ prefix: '2001:db8::/64', since: T0, until: T0 + 60 * MIN, policy: '(manual)', level: 0 });
    await a.persister.save();
    const text = fs.readFileSync(path.join(dir, 'bans.state'), 'utf8');
    expect(text.split('\n')[1]).toBe('{"prefix":"192.0.2.0/24","since":1800000000000,"until":1800000600000,"policy":"dha-ban","level":0,"node":"node-a"},');
    expect((fs.statSync(path.join(dir, 'bans.state')).mode & 0o777) & ~0o640).toBe(0);

    clock.advance(20 * MIN); // the /24 ban expired while "down"; its history still counts
    const b = setup(clock);
    expect(b.persister.load()).toEqual({ restored: 1 });
    expect(b.list.list().map((x) => x.prefix)).toEqual(['2001:db8::/64']);
    expect(b.list.check(parseClientAddress('2001:db8::7'))?.policy).toBe('(manual)');
    // banned again: the restored history escalates it to 20 minutes
    expect(b.list.issue('192.0.2.0/24', spec, 'dha-ban')!.ban).toMatchObject({ level: 1, until: clock.now() + 20 * MIN });
  });

  it('writes only when something changed, and a lift is saved too', async () => {
    const clock = new ManualClock(T0);
    const { list, persister } = setup(clock);
    await persister.save();
    expect(persister.stats()).toEqual({ written: 1, failed: 0 }); // the first save writes (an empty list)
    await persister.save();
    expect(persister.stats().written).toBe(1);
    list.issue('198.51.100.7/32', spec, 'p');
    persister.changed();
    await waitFor(() => persister.stats().written === 2);
    list.lift('198.51.100.7/32');
    await persister.stop();
    expect(persister.stats().written).toBe(3);
    const again = setup(clock);
    again.persister.load();
    expect(again.list.size).toBe(0);
    expect(again.list.liveHistory('198.51.100.7/32')).toBeUndefined(); // the lift forgot it
  });

  it('moves a corrupt or truncated file aside and starts empty; removes temp files of a killed save', () => {
    const clock = new ManualClock(T0);
    fs.writeFileSync(path.join(dir, 'bans.state'), '{"format":"auditgate-bans","format_version":1,"bans":[\n{"prefix":"192.0.2.0/24"');
    fs.writeFileSync(path.join(dir, 'bans.state.tmp-123-4'), 'half');
    const { list, persister } = setup(clock);
    const r = persister.load();
    expect(r.restored).toBe(0);
    expect(r.problem).toMatch(/bans\.state: bans not restored \(not valid JSON .*\); moved to .*bans\.state\.corrupt-/);
    expect(list.size).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual([expect.stringMatching(/^bans\.state\.corrupt-/)]);
    fs.writeFileSync(path.join(dir, 'bans.state'), JSON.stringify({ format: 'auditgate-bans', format_version: 1, bans: [{ prefix: '192.0.2.7/24' }], history: [] }));
    expect(setup(clock).persister.load().problem).toMatch(/ban 0 is not \{prefix, since, until, policy, level\} with a normalized prefix/);
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
