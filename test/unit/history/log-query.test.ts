import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { CidrSeries, StringSeries } from '../../../src/series/index.js';
import { SeriesLogWriter } from '../../../src/history/log-writer.js';
import { historyCommand, queryHistory, splitSeriesList } from '../../../src/history/log-query.js';

const D20 = new Date('2026-11-20T00:00:00Z');
const D21 = new Date('2026-11-21T00:00:00Z');
const D22 = new Date('2026-11-22T00:00:00Z');

let dir: string;
let logDir: string;

/**
 * Writes the logs through SeriesLogWriter (the real writer), window by window:
 *  - rejections:300,6 — on the 20th, for n = 1..20: 198.51.n.1 gets 6n (10:00 window) and
 *    198.51.n.2 gets 4n (10:05 window), so 198.51.n.0/24 totals 10n. Outside the 20th:
 *    198.51.2.1 +500 at 2026-11-19 23:55 and 198.51.1.1 +1000 at 2026-11-21 00:00.
 *  - connections:300,6 — on the 20th: 198.51.20.1 +5, 198.51.3.3 +100.
 *  - connections6 (store_prefix 64) — on the 20th: 2001:db8:1:a::1 ×3, 2001:db8:1:b::7 ×4, 2001:db8:2:1::1 ×5.
 *  - mailfrom (string) — on the 20th: example.com 8, example.org 2.
 */
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-history-'));
  logDir = path.join(dir, 'log');
  const clock = new ManualClock(Date.UTC(2026, 10, 19, 23, 56));
  const registry = new SeriesRegistry(clock);
  const rej = registry.define({ name: 'rejections:300,6', type: 'cidr', interval: 300, windows: 6 }) as CidrSeries;
  const conn = registry.define({ name: 'connections:300,6', type: 'cidr', interval: 300, windows: 6 }) as CidrSeries;
  const conn6 = registry.define({
    name: 'connections6',
    type: 'cidr_ipv6',
    interval: 300,
    windows: 6,
    options: { store_prefix: 64 },
  }) as CidrSeries;
  const mailfrom = registry.define({ name: 'mailfrom', type: 'string', interval: 300, windows: 6 }) as StringSeries;
  const writer = new SeriesLogWriter({
    registry,
    logDir,
    retentionSec: 365 * 86_400,
    logger: pino({ level: 'silent' }),
    clock,
    seriesNames: () => ['rejections:300,6', 'connections:300,6', 'connections6', 'mailfrom'],
  });
  writer.start();
  const step = (iso: string) => {
    clock.set(Date.parse(iso));
    writer.tick();
  };
  rej.add('198.51.2.1', 500);
  step('2026-11-20T10:00:30Z');
  for (let n = 1; n <= 20; n++) rej.add(`198.51.${n}.1`, 6 * n);
  conn.add('198.51.20.1', 5);
  conn6.add('2001:db8:1:a::1', 3);
  conn6.add('2001:db8:1:b::7', 4);
  mailfrom.add('example.com', 8);
  step('2026-11-20T10:05:30Z');
  for (let n = 1; n <= 20; n++) rej.add(`198.51.${n}.2`, 4 * n);
  conn.add('198.51.3.3', 100);
  conn6.add('2001:db8:2:1::1', 5);
  mailfrom.add('example.org', 2);
  step('2026-11-21T00:00:10Z');
  rej.add('198.51.1.1', 1000);
  step('2026-11-21T00:05:10Z');
  await writer.stop();
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('queryHistory', () => {
  it('reads back what the writer logged: the ten /24s with the most rejections on the 20th', async () => {
    const rows = await queryHistory({ logDir, series: ['rejections:300,6'], from: D20, to: D21, groupBy: 24, limit: 10 });
    expect(rows).toEqual(Array.from({ length: 10 }, (_, i) => ({ key: `198.51.${20 - i}.0/24`, count: 10 * (20 - i) })));
  });

  it('sums only windows that start inside [from, to)', async () => {
    const all = await queryHistory({ logDir, series: ['rejections:300,6'], from: D20, to: D21 });
    expect(all).toHaveLength(40);
    expect(all.reduce((s, r) => s + r.count, 0)).toBe(10 * 210);
    expect(all.find((r) => r.key === '198.51.2.1')?.count).toBe(12);
    const twoDays = await queryHistory({ logDir, series: ['rejections:300,6'], from: new Date('2026-11-19T00:00:00Z'), to: D22 });
    expect(twoDays.find((r) => r.key === '198.51.2.1')?.count).toBe(512);
    expect(twoDays[0]).toEqual({ key: '198.51.1.1', count: 1006 });
    // a timestamp range: only the 10:05 window
    const one = await queryHistory({
      logDir,
      series: ['rejections:300,6'],
      from: new Date('2026-11-20T10:05:00Z'),
      to: new Date('2026-11-20T10:10:00Z'),
      limit: 3,
    });
    expect(one).toEqual([
      { key: '198.51.20.2', count: 80 },
      { key: '198.51.19.2', count: 76 },
      { key: '198.51.18.2', count: 72 },
    ]);
  });

  it('filters by prefix', async () => {
    const rows = await queryHistory({ logDir, series: ['rejections:300,6'], from: D20, to: D21, prefix: '198.51.5.0/24' });
    expect(rows).toEqual([
      { key: '198.51.5.1', count: 30 },
      { key: '198.51.5.2', count: 20 },
    ]);
    const none = await queryHistory({ logDir, series: ['rejections:300,6'], from: D20, to: D21, prefix: '2001:db8::/32' });
    expect(none).toEqual([]);
  });

  it('sums several series (ties ordered by address, numerically)', async () => {
    const rows = await queryHistory({
      logDir,
      series: ['rejections:300,6', 'connections:300,6'],
      from: D20,
      to: D21,
      groupBy: 24,
      limit: 10,
    });
    expect(rows).toEqual([
      { key: '198.51.20.0/24', count: 205 },
      { key: '198.51.19.0/24', count: 190 },
      { key: '198.51.18.0/24', count: 180 },
      { key: '198.51.17.0/24', count: 170 },
      { key: '198.51.16.0/24', count: 160 },
      { key: '198.51.15.0/24', count: 150 },
      { key: '198.51.14.0/24', count: 140 },
      { key: '198.51.3.0/24', count: 130 },
      { key: '198.51.13.0/24', count: 130 },
      { key: '198.51.12.0/24', count: 120 },
    ]);
  });

  it('groups IPv6 keys (stored /64 prefixes) by a shorter prefix', async () => {
    expect(await queryHistory({ logDir, series: ['connections6'], from: D20, to: D21, groupBy: 48 })).toEqual([
      { key: '2001:db8:1::/48', count: 7 },
      { key: '2001:db8:2::/48', count: 5 },
    ]);
    expect(await queryHistory({ logDir, series: ['connections6'], from: D20, to: D21, prefix: '2001:db8:1::/48' })).toEqual([
      { key: '2001:db8:1:b::/64', count: 4 },
      { key: '2001:db8:1:a::/64', count: 3 },
    ]);
    // a group finer than the stored prefix keeps the stored prefix
    expect(await queryHistory({ logDir, series: ['connections6'], from: D20, to: D21, groupBy: 128, order: 'key' })).toEqual([
      { key: '2001:db8:1:a::/64', count: 3 },
      { key: '2001:db8:1:b::/64', count: 4 },
      { key: '2001:db8:2:1::/64', count: 5 },
    ]);
  });

  it('string series: the prefix is an exact key; order by key', async () => {
    expect(await queryHistory({ logDir, series: ['mailfrom'], from: D20, to: D21, order: 'key' })).toEqual([
      { key: 'example.com', count: 8 },
      { key: 'example.org', count: 2 },
    ]);
    expect(await queryHistory({ logDir, series: ['mailfrom'], from: D20, to: D21, prefix: 'example.org' })).toEqual([
      { key: 'example.org', count: 2 },
    ]);
  });

  it('skips a malformed line and reports it', async () => {
    const copy = path.join(dir, 'copy');
    fs.cpSync(logDir, copy, { recursive: true });
    const file = path.join(copy, 'mailfrom', '2026-11-20.jsonl');
    fs.appendFileSync(file, '{"series":"mailfrom","ty\n');
    const problems: string[] = [];
    const rows = await queryHistory({ logDir: copy, series: ['mailfrom'], from: D20, to: D21, onProblem: (m) => problems.push(m) });
    expect(rows).toEqual([
      { key: 'example.com', count: 8 },
      { key: 'example.org', count: 2 },
    ]);
    expect(problems).toEqual([`${file}:3: malformed line skipped`]);
  });

  it('a series without logs has no rows', async () => {
    expect(await queryHistory({ logDir, series: ['nothing'], from: D20, to: D21 })).toEqual([]);
  });
});

async function run(argv: string[], now = Date.parse('2026-11-21T08:00:00Z')) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await historyCommand(argv, (l) => out.push(l), { err: (l) => err.push(l), now: () => now });
  return { code, out, err };
}

describe('historyCommand', () => {
  it('prints a table', async () => {
    const r = await run(['--log-dir', logDir, '--series', 'rejections:300,6', '--from', '2026-11-20', '--to', '2026-11-21', '--group', '24', '--limit', '3']);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    expect(r.out).toEqual([
      'series rejections:300,6, from 2026-11-20T00:00:00.000Z to 2026-11-21T00:00:00.000Z, grouped by /24',
      'key             count',
      '198.51.20.0/24    200',
      '198.51.19.0/24    190',
      '198.51.18.0/24    180',
      '20 key(s), total 2100; the first 3 shown',
    ]);
  });

  it('prints JSON with --json; --yesterday is the previous UTC day; names with commas are recognized', async () => {
    const r = await run([
      'history',
      '--log-dir',
      logDir,
      '--series',
      'rejections:300,6,connections:300,6',
      '--yesterday',
      '--prefix',
      '198.51.3.0/24',
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    expect(JSON.parse(r.out[0]!)).toEqual({
      series: ['rejections:300,6', 'connections:300,6'],
      from: '2026-11-20T00:00:00.000Z',
      to: '2026-11-21T00:00:00.000Z',
      prefix: '198.51.3.0/24',
      group: null,
      order: 'count',
      keys: 3,
      total: 130,
      rows: [
        { key: '198.51.3.3', count: 100 },
        { key: '198.51.3.1', count: 18 },
        { key: '198.51.3.2', count: 12 },
      ],
    });
  });

  it('says so when nothing matched', async () => {
    const r = await run(['--log-dir', logDir, '--series', 'mailfrom', '--from', '2026-11-01', '--to', '2026-11-02']);
    expect(r.code).toBe(0);
    expect(r.out[1]).toBe('no counts in that range');
  });

  it.each([
    [[], /--log-dir is required/],
    [['--log-dir', 'x'], /--series is required/],
    [['--log-dir', 'x', '--series', 'a'], /--from \(or --yesterday\) is required/],
    [['--log-dir', 'x', '--series', 'a', '--from', '2026-02-30'], /--from "2026-02-30" is not a valid date/],
    [['--log-dir', 'x', '--series', 'a', '--from', 'yesterday'], /is not a date/],
    [['--log-dir', 'x', '--series', 'a', '--from', '2026-11-21', '--to', '2026-11-20'], /must be before --to/],
    [['--log-dir', 'x', '--series', 'a', '--yesterday', '--from', '2026-11-20'], /cannot be combined/],
    [['--log-dir', 'x', '--series', 'a', '--yesterday', '--group', '200'], /--group "200" must be a prefix length/],
    [['--log-dir', 'x', '--series', 'a', '--yesterday', '--limit', 'ten'], /--limit "ten" must be a whole number/],
    [['--log-dir', 'x', '--series', 'a', '--yesterday', '--order', 'size'], /--order must be "count" or "key"/],
    [['--log-dir', 'x', '--series', 'a', '--yesterday', '--prefix', '192.0.2.0/33'], /not a valid address or CIDR prefix/],
    [['--log-dir', 'x', '--series', 'a b', '--yesterday'], /"a b" is not a series name/],
    [['--log-dir', 'x', '--series', 'a', '--yesterday', '--bogus'], /Unknown option '--bogus'/],
  ])('bad arguments %j exit 2 with a message', async (argv, message) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]);
    expect(r.err[0]).toMatch(/^auditgate history: /);
    expect(r.err[0]).toMatch(message);
    expect(r.err[1]).toMatch(/^usage: auditgate history/);
  });

  it('exits 1 when the logs cannot be read', async () => {
    const broken = path.join(dir, 'broken');
    fs.mkdirSync(broken);
    fs.writeFileSync(path.join(broken, 'mailfrom'), 'a file where a directory should be');
    const r = await run(['--log-dir', broken, '--series', 'mailfrom', '--yesterday']);
    expect(r.code).toBe(1);
    expect(r.err[0]).toMatch(/cannot read the series logs/);
  });
});

describe('splitSeriesList', () => {
  it('prefers names that exist under the log dir, else joins a monitor suffix', () => {
    expect(splitSeriesList('rejections:300,6,connections:300,6,mailfrom', logDir)).toEqual([
      'rejections:300,6',
      'connections:300,6',
      'mailfrom',
    ]);
    expect(splitSeriesList('other:1800,4,plain', logDir)).toEqual(['other:1800,4', 'plain']);
  });
});
