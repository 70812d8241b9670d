import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historyCommand, splitSeriesList } from '../../../src/cli/history.js';
import { writeSampleLogs } from '../../helpers/history-logs.js';

let dir: string;
let logDir: string;

beforeAll(async () => {
  ({ dir, logDir } = await writeSampleLogs());
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
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
