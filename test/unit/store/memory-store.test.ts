/** The store contract (test/helpers/store-contract.ts), run against the memory store. */
import { ManualClock } from '../../../src/series/clock.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { contractRegistry, storeContract } from '../../helpers/store-contract.js';

export { storeContract, type StoreHarness } from '../../helpers/store-contract.js';

storeContract('memory', async () => {
  const clock = new ManualClock(1_800_000_000_000);
  const reg = contractRegistry(clock);
  const store = new MemoryStore(reg);
  return { store, clock, done: () => store.close() };
});
