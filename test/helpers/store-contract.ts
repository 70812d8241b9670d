/**
 * The contract every SeriesStore passes (memory: test/unit/store/memory-store.test.ts; Redis:
 * test/integration/redis-store.test.ts and redis-cluster.test.ts). A store is built with the
 * series `conn` (cidr, 60 s × 4 windows), `helo` (string, 60 s × 4 windows) and two distinct
 * series of the same shape: `dest` (cidr, a policy counting it at /24) and `users` (string).
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { SeriesRegistry } from '../../src/series/registry.js';
import type { SeriesStore } from '../../src/store/types.js';
import { InvalidValueError, UnknownSeriesError } from '../../src/errors.js';
import { DistinctSketch } from '../../src/series/distinct.js';

/** The series the contract uses, in a registry of their own on `clock` (stores kept in process). */
export function contractRegistry(clock: ManualClock): SeriesRegistry {
  const reg = new SeriesRegistry(clock);
  reg.define({ name: 'conn', type: 'cidr', interval: 60, windows: 4 });
  reg.define({ name: 'helo', type: 'string', interval: 60, windows: 4 });
  reg.define({ name: 'dest', type: 'cidr', interval: 60, windows: 4, options: { distinct: true, levels: [24] } });
  reg.define({ name: 'users', type: 'string', interval: 60, windows: 4, options: { distinct: true } });
  return reg;
}

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

    it('counts distinct values per address, at kept and other masks, over windows', async () => {
      const h = await make();
      try {
        const add = (key: string, ...values: string[]) => h.store.addMany(values.map((value) => ({ series: 'dest', key, count: 1, value })));
        await add('192.0.2.1', 'a@x', 'b@x', 'a@x');
        await add('192.0.2.2', 'b@x', 'c@x');
        await add('198.51.100.1', 'a@x');
        expect(await h.store.count('dest', '192.0.2.1')).toBe(2);
        expect(
          await h.store.countMany([
            { series: 'dest', key: '192.0.2.0/24', startv: 0, endv: 0 },
            { series: 'dest', key: '192.0.2.0/25', startv: 0, endv: 0 },
            { series: 'dest', key: '0.0.0.0/0', startv: 0, endv: 0 },
            { series: 'conn', key: '192.0.2.0/24', startv: 0, endv: 0 },
          ]),
        ).toEqual([3, 3, 3, 0]);
        h.clock.advanceSeconds(60);
        await add('192.0.2.3', 'c@x', 'd@x');
        expect(
          await h.store.countMany([
            { series: 'dest', key: '192.0.2.0/24', startv: 0, endv: 0 },
            { series: 'dest', key: '192.0.2.0/24', startv: 0, endv: 1 },
            { series: 'dest', key: '192.0.2.0/23', startv: 0, endv: 1 },
            { series: 'dest', key: '192.0.2.3', startv: 1, endv: 3 },
          ]),
        ).toEqual([2, 4, 4, 0]);
        expect(await h.store.top('dest', { mask: 24, limit: 5 })).toEqual([
          { key: '192.0.2.0/24', count: 4 },
          { key: '198.51.100.0/24', count: 1 },
        ]);
        expect(await h.store.top('dest', { limit: 2 })).toEqual([
          { key: '192.0.2.1', count: 2 },
          { key: '192.0.2.2', count: 2 },
        ]);
        // removing an address takes its values out of its prefixes' counts
        expect(await h.store.removeItem('dest', '192.0.2.1')).toBeGreaterThan(0);
        expect(await h.store.count('dest', '192.0.2.0/24', 0, 3)).toBe(3); // b c d
        expect(await h.store.count('dest', '192.0.2.1', 0, 3)).toBe(0);
        h.clock.advanceSeconds(240);
        expect(await h.store.count('dest', '192.0.2.0/24', 0, 3)).toBe(0);
      } finally {
        await h.done();
      }
    });

    it('past 64 values counts what PFCOUNT does; string keys; values are required and refused where they belong', async () => {
      const h = await make();
      try {
        const values = Array.from({ length: 300 }, (_, i) => `rcpt${i}@example.net`);
        await h.store.addMany(values.map((value, i) => ({ series: 'dest', key: `192.0.2.${i % 5}`, count: 1, value })));
        const sketch = new DistinctSketch();
        for (const v of values) sketch.add(v);
        expect(await h.store.count('dest', '192.0.2.0/24')).toBe(sketch.count());
        expect(await h.store.count('dest', '192.0.2.0/25')).toBe(sketch.count());
        expect(await h.store.count('dest', '192.0.2.1')).toBe(60);
        await h.store.addMany(['192.0.2.0/24', '192.0.2.0/24', '198.51.100.0/24'].map((value) => ({ series: 'users', key: 'alice', count: 1, value })));
        await h.store.addMany([{ series: 'users', key: 'bob', count: 1, value: '192.0.2.0/24' }]);
        expect(await h.store.count('users', 'alice')).toBe(2);
        expect(await h.store.top('users')).toEqual([
          { key: 'alice', count: 2 },
          { key: 'bob', count: 1 },
        ]);
        await expect(h.store.add('dest', '192.0.2.1', 1)).rejects.toBeInstanceOf(InvalidValueError);
        await expect(h.store.addMany([{ series: 'conn', key: '192.0.2.1', count: 1, value: 'x' }])).rejects.toBeInstanceOf(InvalidValueError);
        await expect(h.store.addMany([{ series: 'users', key: 'alice', count: 1, value: '' }])).rejects.toBeInstanceOf(InvalidValueError);
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
