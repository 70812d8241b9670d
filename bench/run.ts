/** `npm run bench [-- --json] [-- --only series|memory|persist|distinct|gateway|relay|replay|fronts|controls|cost|soak|workers|workers-journal]` (cost, soak and workers run only when asked for). */
import { benchMemory, benchSeries } from './series.js';
import { benchDistinct } from './distinct.js';
import { benchGateway } from './gateway.js';
import { benchRelay } from './relay.js';
import { benchFronts } from './fronts.js';
import { benchControls } from './controls.js';
import { benchPersist } from './persist.js';
import { benchCost } from './cost.js';
import { benchSoak } from './soak.js';
import { benchReplay } from './replay.js';
import { benchWorkers } from './workers.js';
import { report, type Figure } from './harness.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const onlyIdx = args.indexOf('--only');
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : undefined;

const suites: Record<string, () => Promise<Figure[]> | Figure[]> = {
  series: benchSeries,
  memory: benchMemory,
  persist: benchPersist,
  distinct: benchDistinct,
  gateway: benchGateway,
  relay: benchRelay,
  replay: benchReplay,
  fronts: benchFronts,
  controls: benchControls,
  cost: benchCost,
  soak: benchSoak,
  workers: benchWorkers,
  'workers-journal': () => benchWorkers({ journal: true }),
};
/** Suites a plain `npm run bench` leaves out: cost needs perf and the machine to itself; soak takes minutes; workers runs gateways as processes. */
const OPT_IN = new Set(['cost', 'soak', 'workers', 'workers-journal']);

if (only !== undefined && !(only in suites)) {
  console.error(`unknown suite "${only}"; known: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}
const figures: Figure[] = [];
for (const [name, fn] of Object.entries(suites)) {
  if (only ? only !== name : OPT_IN.has(name)) continue;
  if (!json) console.error(`running ${name} …`);
  figures.push(...(await fn()));
}
report(figures, json);
