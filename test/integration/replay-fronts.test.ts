/**
 * Replay of what the milter and policy-service fronts journal: sessions as Postfix sends them
 * (its milter protocol, its policy requests over real sockets, a manual clock moved between
 * sessions across window boundaries, IPv4 and IPv6 clients) replayed with the config that
 * recorded them reproduce every decision. What these fronts see differs from the SMTP proxy:
 * Postfix asks the milter about recipients it refused itself (rcpt_rejected without a RCPT the
 * engine let through), takes MAIL after a refused HELO, asks a policy service only at the stages
 * its restrictions name (RCPT without MAIL, DATA without RCPT) and counts the recipients it
 * accepted itself (recipient_count).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MilterClient, PolicyClient, policyRequest } from '../../bench/mta-client.js';
import { SMFIR } from '../../src/milter/protocol.js';
import { ManualClock } from '../../src/series/clock.js';
import type { JournalLine } from '../../src/journal/line.js';
import { journalLines, replayWith } from '../helpers/replay.js';
import { startFronts } from '../helpers/fronts.js';

const T0 = Date.UTC(2030, 0, 1, 10, 0, 0);
const STEP_MS = 3_000;

const BODY = `series:
  conn: { type: cidr, interval: 1m, windows: 3 }
  conn6: { type: cidr_ipv6, interval: 1m, windows: 3, store_prefix: 64 }
  helos: { type: string, interval: 1m, windows: 2 }
  invalid: { type: cidr, interval: 1m, windows: 5 }
  invalid6: { type: cidr_ipv6, interval: 1m, windows: 5, store_prefix: 64 }
  rcpt_ip: { type: cidr, interval: 1m, windows: 2 }
  rcpt_n: { type: cidr, interval: 1m, windows: 3 }
  byte_n: { type: cidr, interval: 1m, windows: 3 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: helo, series: helos, key: "{helo}" }
  - { on: rcpt_rejected, series: [invalid, invalid6] }
  - { on: rcpt, series: rcpt_ip }
  - { on: data, series: rcpt_n, count: rcpts }
  - { on: data, series: byte_n, count: bytes }
policies:
  - { name: per-24, on: connect, series: conn, mask: 24, windows: [0, 2], above: 20, action: tempfail }
  - { name: per-64, on: connect, series: conn6, mask: 64, windows: [0, 2], above: 10, action: tempfail }
  - { name: helo-burst, on: helo, series: helos, key: "{helo}", windows: [0, 1], above: 6, action: reject }
  - { name: dha, on: rcpt, series: invalid, mask: 32, windows: [0, 4], above: 2, action: reject }
  - { name: dha6, on: rcpt, series: invalid6, mask: 64, windows: [0, 4], above: 2, action: reject }
  - { name: rcpt-rate, on: rcpt, series: rcpt_ip, mask: 32, windows: [0, 1], above: 9, action: tempfail }
  - { name: rcpts-per-ip, on: data, series: rcpt_n, mask: 32, windows: [0, 2], above: 12, action: tempfail }
  - { name: bytes-watch, on: data, series: byte_n, mask: 24, windows: [0, 2], above: 5000, action: reject, mode: shadow }
`;

const CLIENTS = [...Array.from({ length: 10 }, (_, i) => `198.51.${100 + (i % 2)}.${20 + i}`), ...Array.from({ length: 6 }, (_, i) => `2001:db8:${i % 2}::${i + 1}`)];

const pick = (i: number, n: number): number => (((i * 2654435761) >>> 0) % 9973) % n;
const refused = (answer: string): boolean => /^[45]\d\d /.test(answer);

/** One Postfix session through the milter: its own refusals of unknown recipients told by {rcpt_mailer}=error. */
async function milterOne(c: MilterClient, i: number): Promise<void> {
  // every fifth session a harvester (one IPv4, one IPv6 address) tries three unknown recipients first
  const harvester = i % 5 === 0;
  const client = harvester ? CLIENTS[i % 10 ? 0 : 12]! : CLIENTS[pick(i, CLIENTS.length)]!;
  const step = async (cmd: Parameters<MilterClient['ask']>[0]): Promise<string> => (await c.ask(cmd)).command;
  const ok = (r: string): boolean => r === SMFIR.CONTINUE || r === SMFIR.ACCEPT;
  c.tell({ type: 'macro', command: 'C', macros: new Map([['j', 'mta.test']]) });
  const family = client.includes(':') ? 'ipv6' : 'ipv4';
  if (!ok(await step({ type: 'connect', hostname: `[${client}]`, family, port: 40000, address: client }))) return void c.tell({ type: 'quit_nc' });
  // a refused HELO: Postfix takes MAIL anyway (smtpd_helo_required = no)
  await step({ type: 'helo', name: i % 2 ? 'same.example' : `h${i}.example` });
  c.tell({ type: 'macro', command: 'M', macros: new Map([['i', `Q${i}`]]) });
  if (!ok(await step({ type: 'mail', sender: `<s${i}@example.org>`, args: [] }))) return void c.tell({ type: 'quit_nc' });
  let accepted = 0;
  for (let r = 0; r < (harvester ? 4 : 1 + (i % 3)); r++) {
    const unknown = harvester ? r < 3 : (i + r) % 4 === 0;
    c.tell({ type: 'macro', command: 'R', macros: new Map([['{rcpt_mailer}', unknown ? 'error' : 'smtp']]) });
    const answer = await step({ type: 'rcpt', recipient: `<r${r}@example.net>`, args: [] });
    if (!unknown && ok(answer)) accepted++;
  }
  if (accepted > 0) {
    c.tell({ type: 'macro', command: 'T', macros: new Map([['{msg_size}', String(400 + 10 * i)]]) });
    await step({ type: 'eom' });
  }
  c.tell({ type: 'quit_nc' });
}

/** One Postfix session through the policy service, asked at the stages `kind` names. */
async function policyOne(c: PolicyClient, i: number): Promise<void> {
  const client = CLIENTS[pick(i + 7, CLIENTS.length)]!;
  const base = { client_port: 20000 + i, helo_name: i % 2 ? 'same.example' : `p${i}.example`, sender: `s${i}@example.org` };
  const ask = (state: string, extra: Record<string, string | number> = {}) => c.ask(policyRequest(state, client, { ...base, ...extra }));
  const kind = i % 3; // 0: every stage; 1: RCPT and END-OF-MESSAGE only; 2: DATA only
  if (kind === 0) {
    if (refused(await ask('CONNECT'))) return;
    await ask('EHLO');
    if (refused(await ask('MAIL'))) return;
  }
  const rcpts = 1 + (i % 4);
  let accepted = rcpts;
  if (kind !== 2) {
    accepted = 0;
    for (let r = 0; r < rcpts; r++) if (!refused(await ask('RCPT', { recipient: `r${r}@example.net`, instance: `I${i}` }))) accepted++;
    if (accepted === 0) return;
  }
  const data = { instance: `I${i}`, recipient_count: accepted };
  if (kind !== 1 && refused(await ask('DATA', data))) return;
  if (kind !== 2) await ask('END-OF-MESSAGE', { ...data, size: 300 + 20 * i });
}

describe('replay of what the milter and policy-service fronts journaled', () => {
  let dir: string;
  let configFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ag-replay-fronts-'));
    const body = `journal: { dir: ${join(dir, 'journal')}, retention: 30d }\nstate_dir: ${join(dir, 'state')}\n${BODY}`;
    const clock = new ManualClock(T0);
    const gw = await startFronts({ milter: true, policy: true, body, clock });
    // the same config as a file for the replay (the fronts' listeners do not change a decision)
    configFile = join(dir, 'candidate.yaml');
    writeFileSync(configFile, `server: { hostname: gw.test, listen: [] }\nmilter: { listen: ["127.0.0.1:0"] }\npolicy_service: { listen: ["127.0.0.1:0"] }\nadmin: { enabled: false }\n${body}`);
    try {
      const milter = await MilterClient.connect({ port: gw.milterPort });
      await milter.negotiate();
      const policy = await PolicyClient.connect({ port: gw.policyPort });
      for (let i = 0; i < 240; i++) {
        clock.set(T0 + i * STEP_MS);
        await milterOne(milter, i);
        await policyOne(policy, i);
      }
      milter.close();
      policy.close();
    } finally {
      await gw.close();
    }
  }, 120_000);


  it('journaled what only these fronts do', () => {
    const lines = journalLines(join(dir, 'journal'));
    const byCid = new Map<string, JournalLine[]>();
    for (const l of lines) byCid.set(l.c, [...(byCid.get(l.c) ?? []), l]);
    const sessions = [...byCid.values()];
    const milter = sessions.filter((ls) => ls[0]!.f === 'milter');
    const policy = sessions.filter((ls) => ls[0]!.f === 'policy');
    expect(milter.length).toBeGreaterThan(200);
    expect(policy.length).toBeGreaterThan(200);
    // Postfix's own refusals of unknown recipients, told to the milter, before any RCPT it let through
    expect(milter.some((ls) => ls.find((l) => l.e === 'rcpt_rejected' || l.e === 'rcpt')?.e === 'rcpt_rejected')).toBe(true);
    // MAIL after a refused HELO
    expect(milter.some((ls) => ls.some((l, k) => l.e === 'helo' && l.o === 'reject' && ls.slice(k).some((m) => m.e === 'mail')))).toBe(true);
    // policy requests at RCPT without MAIL, and at DATA without RCPT, with Postfix's count of recipients
    expect(policy.some((ls) => ls.some((l) => l.e === 'rcpt') && !ls.some((l) => l.e === 'mail'))).toBe(true);
    expect(policy.some((ls) => ls.some((l) => l.e === 'data' && l.n! > 1) && !ls.some((l) => l.e === 'rcpt'))).toBe(true);
  });

  it('reproduces every decision, with refusals of each kind on both fronts', async () => {
    const result = await replayWith(configFile, join(dir, 'journal'));
    expect(result.read.skipped).toBe(0);
    expect(result.decisions.compared).toBeGreaterThan(700);
    expect(result.decisions).toMatchObject({ changed: 0, otherPolicy: 0, unreachedAfter: 0, unreachedBefore: 0 });
    const fired = Object.fromEntries(result.policies.map((p) => [p.policy, p.before]));
    for (const p of result.policies) expect(p.after, p.policy).toEqual(p.before);
    for (const name of ['per-24', 'per-64', 'helo-burst', 'dha', 'dha6', 'rcpt-rate', 'rcpts-per-ip']) expect(fired[name]!.enforce, name).toBeGreaterThan(0);
    expect(fired['bytes-watch']!.shadow).toBeGreaterThan(0);
    expect(result.sessionChanges.transitions).toEqual({});
  });
});
