/**
 * Builds the store the gateway uses: series with replicate: none live in the memory store;
 * series with replicate: cluster | manager go through the Redis store (see redis-store.ts).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Clock } from '../series/clock.js';
import type { SeriesRegistry } from '../series/registry.js';
import { MemoryStore } from './memory-store.js';
import type { SeriesStore } from './types.js';

export interface StoreStatus {
  kind: string;
  /** ok: every series is served by its store; fallback: Redis is unreachable, counting locally. */
  state: 'ok' | 'fallback';
  /** Epoch ms when the current state began. */
  since: number;
  errors: number;
  /** Adds waiting to be shipped to Redis. */
  pending: number;
}

export interface ManagedStore extends SeriesStore {
  status(): StoreStatus;
}

export interface StoreContext {
  config: Config;
  registry: SeriesRegistry;
  clock: Clock;
  logger: Logger;
}

export class ManagedMemoryStore extends MemoryStore implements ManagedStore {
  private readonly since: number;
  constructor(registry: SeriesRegistry, clock: Clock) {
    super(registry);
    this.since = clock.now();
  }
  status(): StoreStatus {
    return { kind: this.kind, state: 'ok', since: this.since, errors: 0, pending: 0 };
  }
}

export async function createStore(ctx: StoreContext): Promise<ManagedStore> {
  return new ManagedMemoryStore(ctx.registry, ctx.clock);
}
