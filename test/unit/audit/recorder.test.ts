import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { Recorder } from '../../../src/audit/recorder.js';
import { SessionTracker } from '../../../src/audit/sessions.js';
import { seriesDefinitions } from '../../../src/config/catalogue.js';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { parseClientAddress } from '../../../src/series/address.js';

function setup(onError: 'local' | 'tempfail') {
  const config = parseConfigText(
    `relay: { url: "dir:/tmp/x" }
monitors: ["60,2"]
store: { on_error: ${onError} }
series:
  c: { type: cidr, interval: 60, windows: 2 }
  c6: { type: cidr_ipv6, interval: 60, windows: 2 }
  h: { type: string, interval: 60, windows: 2 }
record:
  - { on: connect, series: [c, c6] }
  - { on: helo, series: h, key: "{helo}" }
policies:
  - { name: per-ip, on: connect, series: c, mask: 32, above: 1, action: tempfail }
  - { name: per-24, on: connect, series: sessions, mask: 24, above: 5, action: tempfail }
`,
    'recorder-test.yaml',
  );
  const clock = new ManualClock(1_800_000_000_000);
  const registry = new SeriesRegistry(clock);
  for (const d of seriesDefinitions(config)) registry.define(d);
  const store = new MemoryStore(registry);
  const recorder = new Recorder(config, store, new SessionTracker(clock), pino({ level: 'silent' }), clock);
  return { recorder, registry };
}

describe('recorder', () => {
  it.each(['local', 'tempfail'] as const)('a client without an address is counted where it can be, and is no store failure (on_error: %s)', async (onError) => {
    const { recorder, registry } = setup(onError);
    for (let i = 0; i < 3; i++) {
      expect((await recorder.stage({ stage: 'connect', ip: '', client: undefined }, 'cid')).verdict).toBe('continue');
      expect((await recorder.stage({ stage: 'helo', ip: '', client: undefined, helo: 'h.example' }, 'cid')).verdict).toBe('continue');
    }
    await recorder.monitor('receptions', undefined);
    expect(recorder.storeFailureCount()).toBe(0);
    expect(registry.get('c').size()).toBe(0);
    expect(registry.get('h').count('h.example', 0, 1)).toBe(3);
  });

  it('adds an address to the series and monitors of its own family only', async () => {
    const { recorder, registry } = setup('local');
    for (const text of ['192.0.2.7', '2001:db8::7']) {
      const client = parseClientAddress(text)!;
      const res = await recorder.stage({ stage: 'connect', ip: text, client }, 'cid');
      const family = client.family === 4 ? '' : '6';
      expect(res.adds!.map((op) => op.series).sort()).toEqual([`c${family}`, `connections${family}:60,2`].sort());
    }
    expect(registry.get('c').count('192.0.2.7')).toBe(1);
    expect(registry.get('c6').count('2001:db8::7')).toBe(1);
  });
});
