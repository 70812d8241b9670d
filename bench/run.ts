/** `npm run bench [-- --json] [-- --only series|memory|gateway]` */
import { benchMemory, benchSeries } from './series.js';
import { benchGateway } from './gateway.js';
import { report, type Figure } from './harness.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const onlyIdx = args.indexOf('--only');
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : undefined;

const suites: Record<string, () => Promise<Figure[]> | Figure[]> = {
  series: benchSeries,
  memory: benchMemory,
  gateway: benchGateway,
};

const figures: Figure[] = [];
for (const [name, fn] of Object.entries(suites)) {
  if (only && only !== name) continue;
  if (!json) console.error(`running ${name} …`);
  figures.push(...(await fn()));
}
report(figures, json);
