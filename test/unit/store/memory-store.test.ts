/** The store contract (test/helpers/store-contract.ts), run against the memory store. */
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { storeContract } from '../../helpers/store-contract.js';

export { storeContract, type StoreHarness } from '../../helpers/store-contract.js';

storeContract('memory', async () => {
  const clock = new ManualClock(1_800_000_000_000);
  const reg = new SeriesRegistry(clock);
  reg.define({ name: 'conn', type: 'cidr', interval: 60, windows: 4 });
  reg.define({ name: 'helo', type: 'string', interval: 60, windows: 4 });
  reg.define({ name: 'dest', type: 'cidr', interval: 60, windows: 4, options: { distinct: true, levels: [24] } });
  reg.define({ name: 'users', type: 'string', interval: 60, windows: 4, options: { distinct: true } });
  const store = new MemoryStore(reg);
  return { store, clock, done: () => store.close() };
});
