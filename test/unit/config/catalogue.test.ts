/** The series the gateway defines from a config: policy masks as levels, monitors, options. */
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { replicatedSeries, seriesDefinitions } from '../../../src/config/catalogue.js';
import { DEFAULT_MAX_KEYS } from '../../../src/series/types.js';
import { ManualClock } from '../../../src/series/clock.js';
import { defineSeries, type CidrSeries } from '../../../src/series/index.js';

const config = parseConfigText(
  `
relay: { url: "smtp://127.0.0.1:10025" }
monitors: ["300,6"]
series:
  mailfrom: { type: string, interval: 15m, windows: 4, max_keys: 1000 }
`,
  path.join(os.tmpdir(), 'auditgate-defs-test.yaml'),
);

describe('seriesDefinitions', () => {
  it('built-in IPv6 monitors keep /64 prefixes, like the default IPv6 series; IPv4 ones full addresses', () => {
    const defs = new Map(seriesDefinitions(config).map((d) => [d.name, d]));
    for (const base of ['connections6', 'receptions6', 'rejections6']) {
      expect(defs.get(`${base}:300,6`)).toMatchObject({ type: 'cidr_ipv6', interval: 300, windows: 6, options: { store_prefix: 64 } });
    }
    for (const base of ['connections', 'receptions', 'rejections']) {
      expect(defs.get(`${base}:300,6`)?.options?.store_prefix).toBeUndefined();
    }
    expect(defs.get('mailfrom')?.options?.max_keys).toBe(1000);
  });

  it('so a client cycling addresses inside its /64 is one monitor key', () => {
    const def = seriesDefinitions(config).find((d) => d.name === 'connections6:300,6')!;
    const s = defineSeries(def, new ManualClock(1_800_000_000_000)) as CidrSeries;
    for (let i = 1; i <= 1000; i++) s.add(`2001:db8:1:2::${i.toString(16)}`);
    expect(s.size()).toBe(1);
    expect(s.count('2001:db8:1:2::1')).toBe(1000);
    expect(s.count('2001:db8:1:2::/64')).toBe(1000);
  });
});

describe('replicatedSeries', () => {
  it('carries max_keys from the series entry (the cap of a window in Redis), the default otherwise', () => {
    const c = parseConfigText(
      `
relay: { url: "smtp://127.0.0.1:10025" }
store: { redis: "redis://127.0.0.1:6379" }
series:
  mailfrom: { type: string, interval: 15m, windows: 4, max_keys: 1000, replicate: cluster }
  conn: { type: cidr, interval: 15m, windows: 4, replicate: manager }
  local: { type: cidr, interval: 15m, windows: 4 }
`,
      path.join(os.tmpdir(), 'auditgate-defs-test.yaml'),
    );
    expect(replicatedSeries(c).map((r) => [r.name, r.max_keys])).toEqual([
      ['mailfrom', 1000],
      ['conn', DEFAULT_MAX_KEYS],
    ]);
  });
});
