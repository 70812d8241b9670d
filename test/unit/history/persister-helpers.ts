// Shared by the test/unit/history/persister-*.test.ts files. Importing this module registers
// the beforeEach/afterEach that give each test a fresh temp `dir`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { afterEach, beforeEach } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { CidrSeries, StringSeries } from '../../../src/series/index.js';
import type { SeriesDefinition } from '../../../src/series/types.js';
import { SeriesPersister } from '../../../src/history/persister.js';

export const T0 = Date.UTC(2026, 10, 20, 10, 2, 0); // 10:02 UTC: inside the 10:00-10:05 window of a 300 s series

export const DEFS: SeriesDefinition[] = [
  { name: 'connections', type: 'cidr', interval: 300, windows: 6, options: { persist: true } },
  { name: 'rejections:300,6', type: 'cidr', interval: 300, windows: 6, options: { persist: true } },
  { name: 'connections6', type: 'cidr_ipv6', interval: 300, windows: 6, options: { persist: true, store_prefix: 64 } },
  { name: 'mailfrom', type: 'string', interval: 300, windows: 6, options: { persist: true } },
];
export const NAMES = DEFS.map((d) => d.name);

export interface LogLine {
  level: number;
  msg: string;
  file?: string;
}

export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

export let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-persist-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

export function setup(clock: ManualClock, defs: SeriesDefinition[] = DEFS, names: string[] = NAMES) {
  const registry = new SeriesRegistry(clock);
  for (const d of defs) registry.define(d);
  const log = captureLogger();
  const persister = new SeriesPersister({
    registry,
    stateDir: path.join(dir, 'state'),
    intervalSec: 5,
    logger: log.logger,
    clock,
    seriesNames: () => names,
  });
  return { registry, persister, log };
}

export const cidr = (r: SeriesRegistry, n: string) => r.get(n) as CidrSeries;
export const str = (r: SeriesRegistry, n: string) => r.get(n) as StringSeries;

export function fill(r: SeriesRegistry, clock: ManualClock): void {
  cidr(r, 'connections').add('192.0.2.1', 5);
  cidr(r, 'connections').add('192.0.2.77', 2);
  cidr(r, 'rejections:300,6').add('198.51.100.9', 4);
  cidr(r, 'connections6').add('2001:db8:1:2::5', 3);
  str(r, 'mailfrom').add('example.com', 7);
  clock.advanceSeconds(300); // next window: the counts above are now window 1
  cidr(r, 'connections').add('192.0.2.1', 1);
  cidr(r, 'connections').add('203.0.113.4', 9);
  str(r, 'mailfrom').add('example.org', 2);
}

export function files(d: string): string[] {
  return fs.readdirSync(d).sort();
}
