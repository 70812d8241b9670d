/**
 * Record rules that add more than 1 (count: rcpts | bytes | N) and distinct series (distinct:
 * true, value: "{rcpt}"): what the loader accepts, what it refuses (file:line and key), and
 * what the catalogue makes of them (64-bit counts for bytes, kept levels for distinct series).
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { replicatedSeries, seriesDefinitions } from '../../../src/config/catalogue.js';
import { expandTemplate } from '../../../src/policy/evaluate.js';
import { parseClientAddress } from '../../../src/series/address.js';
import { problemsOf } from './load-helpers.js';

const FILE = '/etc/auditgate/amounts.yaml';
const HEAD = `relay: { url: "smtp://127.0.0.1:10025" }
series:
  rcpts: { type: cidr, interval: 1h, windows: 24 }
  bytes: { type: cidr, interval: 1h, windows: 24 }
  dest: { type: cidr, interval: 15m, windows: 4, distinct: true }
  nets: { type: string, interval: 1h, windows: 24, distinct: true }
`;

const problems = (text: string): readonly string[] => problemsOf(() => parseConfigText(text, FILE));

describe('record amounts', () => {
  it('accepts rcpts and bytes at the data stage, and fixed numbers anywhere', () => {
    const c = parseConfigText(
      `${HEAD}record:
  - { on: data, series: rcpts, count: rcpts }
  - { on: data, series: bytes, count: bytes }
  - { on: connect, series: rcpts, count: 3 }
  - { on: connect, series: rcpts, count: -2 }
`,
      FILE,
    );
    expect(c.record.map((r) => r.count)).toEqual(['rcpts', 'bytes', 3, -2]);
    const defs = new Map(seriesDefinitions(c).map((d) => [d.name, d]));
    expect(defs.get('bytes')?.options?.wide).toBe(true); // sizes overflow 32-bit counts
    expect(defs.get('rcpts')?.options?.wide).toBeUndefined();
  });

  it('refuses them at a stage that does not know the message, naming file, line and key', () => {
    expect(
      problems(`${HEAD}record:
  - { on: rcpt, series: rcpts, count: rcpts }
  - { on: mail, series: bytes, count: bytes }
  - { on: connect, series: rcpts, count: 0 }
  - { on: connect, series: rcpts, count: lots }
`),
    ).toEqual([
      `${FILE}:8:32 record[0].count: count: rcpts (the message's accepted recipients) is known only at stage "data"; this rule is on "rcpt"`,
      `${FILE}:9:32 record[1].count: count: bytes (the message's size) is known only at stage "data"; this rule is on "mail"`,
      `${FILE}:10:35 record[2].count: count is a non-zero integer (up to 2147483647 either way), "rcpts" or "bytes"; got 0`,
      `${FILE}:11:35 record[3].count: count is a non-zero integer (up to 2147483647 either way), "rcpts" or "bytes"; got "lots"`,
    ]);
  });
});

describe('distinct series', () => {
  it('take a value template; their policies count distinct values at the masks kept for them', () => {
    const c = parseConfigText(
      `${HEAD}record:
  - { on: rcpt, series: dest, value: "{rcpt}" }
  - { on: auth_fail, series: nets, key: "{auth_user}", value: "{net}" }
policies:
  - { name: dha, on: rcpt, series: dest, mask: 24, windows: [0, 3], above: 500, action: tempfail }
`,
      FILE,
    );
    expect(c.record[0]).toEqual({ on: 'rcpt', series: ['dest'], value: '{rcpt}' });
    const defs = new Map(seriesDefinitions(c).map((d) => [d.name, d]));
    expect(defs.get('dest')?.options).toMatchObject({ distinct: true, levels: [24] }); // no default /8 /16 sketches
    expect(defs.get('nets')?.options?.distinct).toBe(true);
    expect(defs.get('rcpts')?.options?.distinct).toBeUndefined();
  });

  it('a distinct series needs a value, refuses a count; another series refuses a value', () => {
    expect(
      problems(`${HEAD}record:
  - { on: rcpt, series: dest }
  - { on: rcpt, series: dest, value: "{rcpt}", count: 2 }
  - { on: rcpt, series: rcpts, value: "{rcpt}" }
  - { on: connect, series: dest, value: "{rcpt}" }
`),
    ).toEqual([
      `${FILE}:8:17 record[0].series: series "dest" counts distinct values (distinct: true): this rule needs a value, e.g. value: "{rcpt}"`,
      `${FILE}:9:48 record[1].count: count does not apply to distinct series "dest": an event adds its value to the key's set once`,
      `${FILE}:10:32 record[2].value: value applies only to distinct series; "rcpts" counts events (set distinct: true on the series to count distinct values)`,
      `${FILE}:11:34 record[3].value: {rcpt} has no value at stage "connect"; available there: {ip} {net}`,
    ]);
  });

  it('replicated distinct series say so to the Redis store', () => {
    const c = parseConfigText(
      `relay: { url: "smtp://127.0.0.1:10025" }
store: { redis: "redis://127.0.0.1:6379" }
series:
  dest: { type: cidr, interval: 15m, windows: 4, distinct: true, replicate: cluster }
record:
  - { on: rcpt, series: dest, value: "{rcpt}" }
`,
      FILE,
    );
    expect(replicatedSeries(c)[0]).toMatchObject({ name: 'dest', distinct: true, masks: [0] });
  });

  it('{net} is the client network: its /24 (IPv4) or /64 (IPv6)', () => {
    const ctx = (ip: string) => ({ stage: 'auth_fail' as const, client: parseClientAddress(ip), ip });
    expect(expandTemplate('{net}', ctx('192.0.2.77'))).toBe('192.0.2.0/24');
    expect(expandTemplate('{net}', ctx('::ffff:198.51.100.9'))).toBe('198.51.100.0/24');
    expect(expandTemplate('{net}', ctx('2001:db8:1:2:3:4:5:6'))).toBe('2001:db8:1:2::/64');
    expect(expandTemplate('{net}', { stage: 'auth_fail', client: undefined, ip: '' })).toBeUndefined();
  });
});
