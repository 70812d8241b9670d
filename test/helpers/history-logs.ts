/** Series logs for the history tests, written by the real SeriesLogWriter in a temp dir. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { SeriesLogWriter } from '../../src/history/log-writer.js';
import { ManualClock } from '../../src/series/clock.js';
import type { CidrSeries, StringSeries } from '../../src/series/index.js';
import { SeriesRegistry } from '../../src/series/registry.js';

/**
 * Writes the logs through SeriesLogWriter (the real writer), window by window, under a new temp
 * dir (remove it when done):
 *  - rejections:300,6 — on the 20th, for n = 1..20: 198.51.n.1 gets 6n (10:00 window) and
 *    198.51.n.2 gets 4n (10:05 window), so 198.51.n.0/24 totals 10n. Outside the 20th:
 *    198.51.2.1 +500 at 2026-11-19 23:55 and 198.51.1.1 +1000 at 2026-11-21 00:00.
 *  - connections:300,6 — on the 20th: 198.51.20.1 +5, 198.51.3.3 +100.
 *  - connections6 (store_prefix 64) — on the 20th: 2001:db8:1:a::1 ×3, 2001:db8:1:b::7 ×4, 2001:db8:2:1::1 ×5.
 *  - mailfrom (string) — on the 20th: example.com 8, example.org 2.
 */
export async function writeSampleLogs(): Promise<{ dir: string; logDir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-history-'));
  const logDir = path.join(dir, 'log');
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
  return { dir, logDir };
}
