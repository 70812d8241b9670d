/**
 * Replay of what a real Postfix made the milter and the policy service journal: one private
 * Postfix calls both fronts of one gateway (smtpd_milters, and check_policy_service in every
 * restriction list), refuses unknown recipients itself (the milter hears of them), and takes the
 * gateway's refusals; IPv4 and IPv6 clients come in by PROXY headers, the gateway's clock moves
 * between sessions across window boundaries. `auditgate replay` of the journal with the config
 * that recorded it reproduces every decision: replay's idea of what Postfix asks after a refusal
 * (replay/driver.ts) is checked against Postfix itself.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { journalLines, replayWith } from '../helpers/replay.js';
import { startFronts, type FrontsGateway } from '../helpers/fronts.js';
import { PostfixInstance } from '../helpers/postfix.js';
import { requireProgram } from '../helpers/programs.js';
import { proxyV1, sendMail, startBackend, type Backend } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const ok = requireProgram('postfix', { pkg: 'postfix', purpose: 'replay of what Postfix made the milter and the policy service journal', root: true });

const T0 = Date.UTC(2030, 0, 1, 8, 0, 0);
const SESSIONS = 60;
const STEP_MS = 10_000;

const BODY = `series:
  conn: { type: cidr, interval: 1m, windows: 3 }
  conn6: { type: cidr_ipv6, interval: 1m, windows: 3, store_prefix: 64 }
  bad_rcpt: { type: cidr, interval: 1m, windows: 5 }
  rcpt_net: { type: cidr, interval: 1m, windows: 3 }
  msgs: { type: cidr, interval: 1m, windows: 3 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: rcpt_rejected, series: bad_rcpt }
  - { on: rcpt, series: rcpt_net }
  - { on: data, series: msgs, count: rcpts }
policies:
  - { name: conn32, on: connect, series: conn, mask: 32, windows: [0, 2], above: 5, action: tempfail, client: [192.0.2.0/24] }
  - { name: conn64, on: connect, series: conn6, mask: 64, windows: [0, 2], above: 5, action: tempfail }
  - { name: dha, on: rcpt, series: bad_rcpt, mask: 32, windows: [0, 4], above: 4, action: tempfail }
  - { name: rcpt-net, on: rcpt, series: rcpt_net, mask: 24, windows: [0, 1], above: 8, action: reject }
  - { name: msgs-watch, on: data, series: msgs, mask: 24, windows: [0, 2], above: 6, action: reject, mode: shadow }
`;

const CLIENTS = ['192.0.2.10', '192.0.2.11', '192.0.2.12', '198.51.100.20', '198.51.100.21', '2001:db8:1::1', '2001:db8:1::2', '2001:db8:2::1'];
const HARVESTER = '198.51.100.20';
const UNKNOWN = ['unknown1@example.net', 'unknown2@example.net', 'unknown3@example.net'];

describe.skipIf(!ok)('replay of what Postfix made the milter and the policy service journal', () => {
  let backend: Backend;
  let gw: FrontsGateway | undefined;
  let pf: PostfixInstance | undefined;
  let dir: string;
  let configFile: string;
  const codes: number[][] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ag-replay-postfix-'));
    const body = `journal: { dir: ${join(dir, 'journal')}, retention: 30d }\nstate_dir: ${join(dir, 'state')}\n${BODY}`;
    configFile = join(dir, 'candidate.yaml');
    writeFileSync(configFile, `server: { hostname: gw.test, listen: [] }\nmilter: { listen: ["127.0.0.1:0"] }\npolicy_service: { listen: ["127.0.0.1:0"] }\nadmin: { enabled: false }\n${body}`);
    backend = await startBackend();
    const clock = new ManualClock(T0);
    gw = await startFronts({ milter: true, policy: true, body, clock });
    const policy = `check_policy_service inet:127.0.0.1:${gw.policyPort}`;
    pf = await PostfixInstance.start({
      relayPort: backend.port,
      milter: { port: gw.milterPort },
      policy: { port: gw.policyPort, restrictions: ['client', 'helo', 'sender', 'data', 'end_of_data'] },
      mainCf: {
        // Postfix refuses unknown recipients itself (the milter hears of them), then asks the policy service
        smtpd_recipient_restrictions: `check_recipient_access inline:{${UNKNOWN.map((u) => `${u}=REJECT`).join(', ')}}, ${policy}, permit`,
      },
    });
    for (let i = 0; i < SESSIONS; i++) {
      clock.set(T0 + i * STEP_MS);
      const client = CLIENTS[i % CLIENTS.length]!;
      // 198.51.100.20 harvests: unknown recipients first, then a real one
      const to = client === HARVESTER ? [...UNKNOWN, `real${i}@example.net`] : Array.from({ length: 1 + (i % 4) }, (_, k) => `u${k}@example.net`);
      const replies = await sendMail(pf.port, { preface: proxyV1(client, 30000 + i), to, body: `Subject: r${i}\r\n\r\nhello\r\n` });
      codes.push(replies.map((r) => r.code));
    }
    await gw.close(); // ends the policy service's sessions and writes the journal
    gw = undefined;
  }, 180_000);

  afterAll(async () => {
    await pf?.stop();
    await gw?.close();
    await backend?.close();
  });

  it('Postfix answered with refusals of each kind and delivered the rest', async () => {
    const all = codes.flat();
    expect(all).toContain(421); // conn32 / conn64 at connect: the milter's 421 closes the session
    expect(all).toContain(554); // Postfix's own refusal of an unknown recipient
    expect(all.some((c) => c === 450 || c === 451)).toBe(true); // dha
    expect(all).toContain(550); // rcpt-net
    await waitFor(() => backend.messages.length > 0, 20_000);
  });

  it('replay with the recording config reproduces every decision of both fronts', async () => {
    const lines = journalLines(join(dir, 'journal'));
    expect(lines.some((l) => l.f === 'milter' && l.e === 'rcpt_rejected')).toBe(true);
    expect(lines.some((l) => l.f === 'policy' && l.e === 'data' && l.n! > 0)).toBe(true);
    const result = await replayWith(configFile, join(dir, 'journal'));
    expect(result.read.skipped).toBe(0);
    expect(result.decisions.compared).toBeGreaterThan(SESSIONS * 4);
    expect(result.decisions).toMatchObject({ changed: 0, otherPolicy: 0, unreachedAfter: 0, unreachedBefore: 0 });
    for (const p of result.policies) expect(p.after, p.policy).toEqual(p.before);
    const fired = Object.fromEntries(result.policies.map((p) => [p.policy, p.before]));
    for (const name of ['conn32', 'dha', 'rcpt-net']) expect(fired[name]!.enforce, name).toBeGreaterThan(0);
    expect(fired['msgs-watch']!.shadow).toBeGreaterThan(0);
  });
});
