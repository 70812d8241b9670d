import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import type { CidrSeries } from '../../../src/series/index.js';
import { SeriesPersister } from '../../../src/history/persister.js';
import { parseStateFile } from '../../../src/history/snapshot-file.js';
import { T0, DEFS, dir } from './persister-helpers.js';

describe('SeriesPersister: timer and stop', () => {
  it('saves periodically and once more at stop', async () => {
    const clock = new ManualClock(T0);
    const registry = new SeriesRegistry(clock);
    const c = registry.define(DEFS[0]!) as CidrSeries;
    const persister = new SeriesPersister({
      registry,
      stateDir: path.join(dir, 'state'),
      intervalSec: 0.05,
      logger: pino({ level: 'silent' }),
      clock,
      seriesNames: () => ['connections'],
    });
    c.add('192.0.2.1', 4);
    persister.start();
    const file = persister.fileFor('connections');
    await vi.waitFor(
      () => {
        expect(parseStateFile(fs.readFileSync(file, 'utf8'), 'connections').snapshot.entries).toEqual([
          ['192.0.2.1', [4, 0, 0, 0, 0, 0]],
        ]);
      },
      { timeout: 5000, interval: 20 },
    );
    c.add('192.0.2.2', 6);
    await persister.stop();
    const state = parseStateFile(fs.readFileSync(file, 'utf8'), 'connections');
    expect(state.snapshot.entries).toEqual([
      ['192.0.2.1', [4, 0, 0, 0, 0, 0]],
      ['192.0.2.2', [6, 0, 0, 0, 0, 0]],
    ]);
  });

  it('rejects a non-positive interval', () => {
    const clock = new ManualClock(T0);
    expect(
      () =>
        new SeriesPersister({
          registry: new SeriesRegistry(clock),
          stateDir: dir,
          intervalSec: 0,
          logger: pino({ level: 'silent' }),
          clock,
          seriesNames: () => [],
        }),
    ).toThrow(/positive/);
  });
});
