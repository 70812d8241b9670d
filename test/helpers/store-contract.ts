/**
 * The contract every SeriesStore passes (memory: test/unit/store/memory-store.test.ts; Redis:
 * test/integration/redis-store.test.ts and redis-cluster.test.ts). A store is built with two
 * series: `conn` (cidr, 60 s × 4 windows) and `helo` (string, 60 s × 4 windows).
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import type { SeriesStore } from '../../src/store/types.js';
import { UnknownSeriesError } from '../../src/errors.js';

export interface StoreHarness {
  store: SeriesStore;
  clock: ManualClock;
  done(): Promise<void>;
}

export function storeContract(name: string, make: () => Promise<StoreHarness>): void {
  describe(`store contract: ${name}`, () => {
    it('adds and counts across masks and windows', async () => {
      const h = await make();
      try {
        await h.store.add('conn', '192.0.2.1');
        await h.store.addMany([
          { series: 'conn', key: '192.0.2.2', count: 2 },
          { series: 'conn', key: '198.51.100.1', count: 4 },
        ]);
        expect(await h.store.count('conn', '192.0.2.1')).toBe(1);
        expect(await h.store.count('conn', '192.0.2.0/24')).toBe(3);
        h.clock.advanceSeconds(60);
        await h.store.add('conn', '192.0.2.1', 10);
        expect(
          await h.store.countMany([
            { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 0 },
            { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 1 },
            { series: 'conn', key: '0.0.0.0/0', startv: 1, endv: 1 },
          ]),
        ).toEqual([10, 13, 7]);
      } finally {
        await h.done();
      }
    });

    it('removes items and ranks top talkers', async () => {
      const h = await make();
      try {
        await h.store.add('conn', '192.0.2.1', 5);
        await h.store.add('conn', '192.0.2.9', 1);
        await h.store.add('conn', '203.0.113.1', 3);
        expect(await h.store.top('conn', { mask: 24, limit: 2 })).toEqual([
          { key: '192.0.2.0/24', count: 6 },
          { key: '203.0.113.0/24', count: 3 },
        ]);
        expect(await h.store.removeItem('conn', '192.0.2.0/24')).toBe(2);
        expect(await h.store.count('conn', '0.0.0.0/0')).toBe(3);
        await h.store.add('helo', 'mx.example', 2);
        expect(await h.store.count('helo', 'mx.example')).toBe(2);
      } finally {
        await h.done();
      }
    });

    it('ages counts out with the clock', async () => {
      const h = await make();
      try {
        await h.store.add('conn', '192.0.2.1', 5);
        h.clock.advanceSeconds(240);
        expect(await h.store.count('conn', '192.0.2.1', 0, 3)).toBe(0);
      } finally {
        await h.done();
      }
    });

    it('rejects unknown series', async () => {
      const h = await make();
      try {
        await expect(h.store.count('nope', '192.0.2.1')).rejects.toBeInstanceOf(UnknownSeriesError);
      } finally {
        await h.done();
      }
    });
  });
}
