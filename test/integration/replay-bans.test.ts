/**
 * Bans made and lifted by hand (the admin API) are in the journal, and a replay applies them
 * where they were made: sessions through the real gateway (PROXY headers, IPv4 and IPv6, a
 * manual clock) with an operator banning a /24 by hand, lifting it early, and banning an IPv6
 * /48 that runs out on its own. The recording config reproduces every decision, the refusals
 * of the bans included; without the ban lines the same journal would not be reproduced.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANUAL_POLICY } from '../../src/bans/ban-list.js';
import { ManualClock } from '../../src/series/clock.js';
import { journalLines, replayWith } from '../helpers/replay.js';
import { proxyV1, sendMail, startBackend, startTestGateway, type Backend } from '../helpers/smtp.js';

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const STEP_MS = 10_000;
const SESSIONS = 40;
const CLIENTS = ['198.51.100.7', '198.51.100.8', '192.0.2.5', '2001:db8:5::1', '2001:db8:5:1::2'];

const body = (dir: string) => `state_dir: ${join(dir, 'state')}
journal: { dir: ${join(dir, 'journal')}, retention: 30d }
series:
  conn: { type: cidr, interval: 1m, windows: 3 }
record:
  - { on: connect, series: conn }
policies:
  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 2], above: 4, action: tempfail }
`;

describe('replay of bans made and lifted by hand', () => {
  let backend: Backend;
  let dir: string;
  let configFile: string;
  const greetings: Array<{ i: number; client: string; code: number }> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ag-replay-bans-'));
    backend = await startBackend();
    const clock = new ManualClock(T0);
    const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: body(dir), clock, admin: '{ listen: "127.0.0.1:0" }' });
    configFile = join(dir, 'candidate.yaml');
    writeFileSync(configFile, `server: { hostname: gw.test, listen: ["127.0.0.1:0"] }\nrelay: { url: "smtp://127.0.0.1:${backend.port}" }\nadmin: { enabled: false }\n${body(dir)}`);
    const admin = `http://127.0.0.1:${gw.gateway.adminAddress()!.port}`;
    const api = async (method: string, p: string, json?: unknown): Promise<number> => {
      const res = await fetch(`${admin}${p}`, json === undefined ? { method } : { method, body: JSON.stringify(json), headers: { 'content-type': 'application/json' } });
      await res.text();
      return res.status;
    };
    try {
      for (let i = 0; i < SESSIONS; i++) {
        clock.set(T0 + i * STEP_MS);
        if (i === 8) expect(await api('POST', '/bans', { prefix: '198.51.100.0/24', for: '5m' })).toBe(200);
        if (i === 18) expect(await api('DELETE', '/bans?prefix=198.51.100.0/24')).toBe(200);
        if (i === 22) expect(await api('POST', '/bans', { prefix: '2001:db8:5::/48', for: 60 })).toBe(200);
        const client = CLIENTS[i % CLIENTS.length]!;
        const replies = await sendMail(gw.port, { preface: proxyV1(client) });
        greetings.push({ i, client, code: replies[0]!.code });
      }
    } finally {
      await gw.close();
    }
  }, 120_000);

  afterAll(async () => {
    await backend?.close();
  });

  const journalText = (): string[] => readdirSync(join(dir, 'journal')).flatMap((f) => readFileSync(join(dir, 'journal', f), 'utf8').split('\n').filter(Boolean));

  it('the bans refused clients while in force, and the journal has them with their ends', () => {
    const refused = (from: number, to: number, prefix: string) => greetings.filter((g) => g.i >= from && g.i < to && g.client.startsWith(prefix));
    expect(refused(8, 18, '198.51.100.').every((g) => g.code === 421)).toBe(true);
    expect(refused(18, 26, '198.51.100.').some((g) => g.code === 220)).toBe(true); // lifted early
    expect(refused(22, 28, '2001:db8:5:').every((g) => g.code === 421)).toBe(true);
    expect(refused(29, 40, '2001:db8:5:').every((g) => g.code === 220)).toBe(true); // ran out after 60 s
    const controls = journalLines(join(dir, 'journal')).filter((l) => l.f === 'admin');
    expect(controls.map((l) => [l.e, l.a, l.g === undefined ? undefined : l.g - l.t])).toEqual([
      ['ban', '198.51.100.0/24', 300_000],
      ['lift', '198.51.100.0/24', undefined],
      ['ban', '2001:db8:5::/48', 60_000],
    ]);
  });

  it('replay with the recording config applies them where they were made: every decision reproduced', async () => {
    const result = await replayWith(configFile, join(dir, 'journal'));
    expect(result.read.skipped).toBe(0);
    expect(result.sessions).toBe(SESSIONS);
    expect(result.decisions).toMatchObject({ changed: 0, otherPolicy: 0, unreachedAfter: 0, unreachedBefore: 0 });
    const manual = result.policies.find((p) => p.policy === MANUAL_POLICY)!;
    expect(manual.before.enforce).toBeGreaterThan(5);
    expect(manual.after).toEqual(manual.before);
  });

  it('without the ban lines the same journal is not reproduced', async () => {
    const copy = join(mkdtempSync(join(tmpdir(), 'ag-replay-bans-cut-')), '2030-01-01.jsonl');
    writeFileSync(copy, journalText().filter((t) => !t.includes('"f":"admin"')).join('\n') + '\n');
    const result = await replayWith(configFile, copy);
    expect(result.decisions.changed).toBeGreaterThan(5);
  });
});
