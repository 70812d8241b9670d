/**
 * The session driver's idea of what a client (or the MTA asking) can still do after the engine's
 * verdicts, front by front: the SMTP proxy's client, Postfix in front of the milter, Postfix
 * asking a policy service. A virtual engine on a config that refuses one HELO name, one sender
 * and one recipient, and counts recipients at DATA (`count: rcpts`).
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import type { FrontKind } from '../../../src/audit/session.js';
import { SessionDriver } from '../../../src/replay/driver.js';
import { virtualEngine } from '../../../src/replay/virtual-engine.js';
import { parseClientAddress } from '../../../src/series/address.js';

const config = parseConfigText(
  `server: { hostname: d.test, listen: ["127.0.0.1:0"] }
relay: { url: "smtp://127.0.0.1:25" }
admin: { enabled: false }
series:
  helos: { type: string, interval: 1m, windows: 1 }
  senders: { type: string, interval: 1m, windows: 1 }
  rcpts: { type: string, interval: 1m, windows: 1 }
  per_msg: { type: cidr, interval: 1m, windows: 1 }
record:
  - { on: helo, series: helos, key: "{helo}" }
  - { on: mail, series: senders, key: "{mail_from}" }
  - { on: rcpt, series: rcpts, key: "{rcpt}" }
  - { on: data, series: per_msg, count: rcpts }
policies:
  - { name: bad-helo, on: helo, series: helos, key: "bad.example", above: 0, action: reject }
  - { name: bad-sender, on: mail, series: senders, key: "bad@example.org", above: 0, action: reject }
  - { name: bad-rcpt, on: rcpt, series: rcpts, key: "bad@example.net", above: 0, action: reject }
`,
  'driver-test.yaml',
);

const T0 = Date.UTC(2030, 0, 1);
let n = 0;

function driver(front: FrontKind) {
  const ve = virtualEngine(config, T0);
  const d = new SessionDriver(ve.engine, front, `c${++n}`, parseClientAddress('192.0.2.1'));
  const action = async (v: unknown) => ((await v) as { action: string } | undefined)?.action ?? 'unreached';
  return {
    d,
    stage: (s: 'connect' | 'helo' | 'mail' | 'rcpt' | 'data', facts: Parameters<SessionDriver['facts']>[0] = {}) => {
      d.facts(facts);
      return action(d.stage(s));
    },
    rejected: (rcpt: string) => {
      d.facts({ mailFrom: 'a@example.org', rcpt });
      return action(d.rcptRejected());
    },
    recipientsCounted: () => ve.registry.get('per_msg')!.count('192.0.2.1'),
  };
}

describe('SessionDriver, front by front', () => {
  it('MAIL after a refused HELO: the proxy client must say HELO again; Postfix takes it', async () => {
    for (const [front, mail] of [['smtp', 'unreached'], ['milter', 'continue'], ['policy', 'continue']] as const) {
      const t = driver(front);
      expect(await t.stage('connect')).toBe('continue');
      expect(await t.stage('helo', { helo: 'bad.example' }), front).toBe('reject');
      expect(await t.stage('mail', { mailFrom: 'a@example.org' }), front).toBe(mail);
    }
  });

  it('after a refused MAIL, no RCPT and no DATA on any front', async () => {
    for (const front of ['smtp', 'milter', 'policy'] as const) {
      const t = driver(front);
      expect(await t.stage('mail', { mailFrom: 'bad@example.org' })).toBe('reject');
      expect(await t.stage('rcpt', { mailFrom: 'bad@example.org', rcpt: 'b@example.net' }), front).toBe('unreached');
      expect(await t.stage('data', { mailFrom: 'bad@example.org', rcpts: 1 }), front).toBe('unreached');
    }
  });

  it('a policy service is asked at RCPT without MAIL, and at DATA without RCPT with Postfix\'s count', async () => {
    const smtp = driver('smtp');
    expect(await smtp.stage('rcpt', { rcpt: 'b@example.net' })).toBe('unreached');
    const p = driver('policy');
    expect(await p.stage('rcpt', { mailFrom: 'a@example.org', rcpt: 'b@example.net' })).toBe('continue');
    expect(await p.stage('data', { mailFrom: 'a@example.org', rcpts: 3 })).toBe('continue');
    expect(p.recipientsCounted()).toBe(3); // count: rcpts from the MTA's count
    const q = driver('policy');
    expect(await q.stage('data', { mailFrom: 'a@example.org', rcpts: 0 })).toBe('unreached');
    // every RCPT asked was refused: Postfix has nobody to send DATA to
    const r = driver('policy');
    expect(await r.stage('rcpt', { mailFrom: 'a@example.org', rcpt: 'bad@example.net' })).toBe('reject');
    expect(await r.stage('data', { mailFrom: 'a@example.org' })).toBe('unreached');
  });

  it('rcpt_rejected: after a RCPT the engine let through behind the proxy; a recipient Postfix refused itself for the milter', async () => {
    const smtp = driver('smtp');
    await smtp.stage('mail', { mailFrom: 'a@example.org' });
    expect(await smtp.rejected('nobody@example.net')).toBe('unreached');
    expect(await smtp.stage('rcpt', { mailFrom: 'a@example.org', rcpt: 'nobody@example.net' })).toBe('continue');
    expect(await smtp.rejected('nobody@example.net')).toBe('continue');
    const milter = driver('milter');
    expect(await milter.rejected('nobody@example.net')).toBe('unreached'); // no MAIL yet
    await milter.stage('mail', { mailFrom: 'a@example.org' });
    expect(await milter.rejected('nobody@example.net')).toBe('continue');
    expect(await milter.rejected('nobody2@example.net')).toBe('continue');
  });
});
