import { describe, expect, it } from 'vitest';
import { WorkerControls } from '../../../src/cluster/worker-controls.js';
import type { WireBanRequest } from '../../../src/cluster/messages.js';
import { parseConfigText } from '../../../src/config/load.js';
import { compilePolicies } from '../../../src/policy/compile.js';
import { parseClientAddress, type ClientAddress } from '../../../src/series/address.js';
import { ManualClock } from '../../../src/series/clock.js';

const CONFIG = parseConfigText(
  `server: { hostname: w.test, listen: [] }
policy_service: { listen: ["127.0.0.1:10040"] }
protected: [198.51.100.0/24, "2001:db8:ffff::/48"]
series:
  conn: { type: cidr, interval: 60, windows: 2 }
policies:
  - { name: flood, on: connect, series: conn, mask: 24, above: 3, action: tempfail, ban: { for: 10m, factor: 2, max: 1h } }
`,
  'w.yaml',
);
const flood = compilePolicies(CONFIG).connect[0]!;
const at = (ip: string): ClientAddress => parseClientAddress(ip)!;

function controls() {
  const clock = new ManualClock(1_800_000_000_000);
  const asked: WireBanRequest[] = [];
  return { clock, asked, c: new WorkerControls(CONFIG, clock, (r) => asked.push(r)) };
}

describe("a worker's controls", () => {
  it("refuses clients the primary's bans hold, never a protected one, and counts the refusals", () => {
    const { clock, c } = controls();
    c.apply([{ ban: { prefix: '192.0.2.0/24', since: clock.now(), until: clock.now() + 60_000, policy: 'flood', level: 0 } }, { ban: { prefix: '198.51.100.0/24', since: clock.now(), until: clock.now() + 60_000, policy: '(manual)', level: 0 } }]);
    expect(c.banned(at('192.0.2.9'))?.prefix).toBe('192.0.2.0/24');
    expect(c.banned(at('198.51.100.9'))).toBeUndefined(); // protected wins over a ban
    expect(c.isProtected(at('2001:db8:ffff:1::1'))).toBe(true);
    expect(c.banned(at('192.0.3.1'))).toBeUndefined();
    expect(c.refused).toBe(1);
    c.apply([{ lift: '192.0.2.0/24' }]);
    expect(c.banned(at('192.0.2.9'))).toBeUndefined();
    c.apply([{ ban: { prefix: '192.0.2.0/24', since: clock.now(), until: clock.now() + 1000, policy: 'flood', level: 0 } }]);
    clock.advance(1000);
    expect(c.banned(at('192.0.2.9'))).toBeUndefined(); // expired
  });

  it("a policy's ban: held here at once for its first duration, asked of the primary once, replaced by the primary's", () => {
    const { clock, asked, c } = controls();
    c.ban(at('192.0.2.9'), flood, 'cid1');
    expect(c.banned(at('192.0.2.200'))).toMatchObject({ prefix: '192.0.2.0/24', until: clock.now() + 600_000 });
    c.ban(at('192.0.2.10'), flood, 'cid2'); // already banned here: nothing more to ask
    expect(asked).toEqual([{ issue: { prefix: '192.0.2.0/24', spec: { forMs: 600_000, factor: 2, maxMs: 3_600_000 }, policy: 'flood', cid: 'cid1' } }]);
    c.apply([{ ban: { prefix: '192.0.2.0/24', since: clock.now(), until: clock.now() + 1_200_000, policy: 'flood', level: 1 } }]); // escalated by the primary
    expect(c.banned(at('192.0.2.1'))).toMatchObject({ level: 1, until: clock.now() + 1_200_000 });
    c.ban(at('198.51.100.7'), flood, 'cid3'); // protected: never banned
    expect(asked).toHaveLength(1);
    c.configure(parseConfigText('server: { listen: [] }\npolicy_service: { listen: ["127.0.0.1:1"] }\n', 'w2.yaml'));
    c.ban(at('198.51.100.7'), flood, 'cid4'); // a reload dropped the protected networks
    expect(asked.at(-1)).toMatchObject({ issue: { prefix: '198.51.100.0/24' } });
  });
});
