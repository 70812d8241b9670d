/** The admin API's answers as the console reads them: the shapes the server declares, and the stream's decisions. */
export type { SeriesRow as ApiSeries, BanJson as ApiBan } from '../admin/answers.js';
export type { StoreStatus as ApiStore } from '../store/types.js';
import type { DecisionEvent } from '../events.js';

/** A decision as the live stream and `show ip` give it (the stream's number along when known). */
export type ApiDecision = DecisionEvent & { id?: number };
