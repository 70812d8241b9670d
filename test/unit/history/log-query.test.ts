import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryHistory } from '../../../src/history/log-query.js';
import { writeSampleLogs } from '../../helpers/history-logs.js';

const D20 = new Date('2026-11-20T00:00:00Z');
const D21 = new Date('2026-11-21T00:00:00Z');
const D22 = new Date('2026-11-22T00:00:00Z');

let dir: string;
let logDir: string;

beforeAll(async () => {
  ({ dir, logDir } = await writeSampleLogs());
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
