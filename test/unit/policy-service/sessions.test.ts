/**
 * Which engine session a policy request belongs to (src/policy-service/sessions.ts), on a
 * manual clock: keyed by the client connection (else instance, else none), a CONNECT starts
 * over, transactions, recipient_count and size, the bound and the idle expiry.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Recorder } from '../../../src/audit/recorder.js';
import { SessionEngine } from '../../../src/audit/session.js';
import { SessionTracker } from '../../../src/audit/sessions.js';
import { seriesDefinitions } from '../../../src/config/catalogue.js';
import { parseConfigText } from '../../../src/config/load.js';
import { PolicySessions, sessionKey } from '../../../src/policy-service/sessions.js';
import { toPolicyRequest, type PolicyRequest } from '../../../src/policy-service/request.js';
import { protocolStateToStage } from '../../../src/policy-service/codec.js';
import { ManualClock } from '../../../src/series/clock.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import { MemoryStore } from '../../../src/store/memory-store.js';

function setup(max = 100) {
  const config = parseConfigText('server: { listen: [] }\npolicy_service: { listen: ["127.0.0.1:0"] }\n', 'sessions-test.yaml');
  const clock = new ManualClock(1_800_000_000_000);
  const registry = new SeriesRegistry(clock);
  for (const d of seriesDefinitions(config)) registry.define(d);
  const tracker = new SessionTracker(clock);
  const logger = pino({ level: 'silent' });
  const engine = new SessionEngine({ recorder: new Recorder(config, new MemoryStore(registry), tracker, logger, clock), sessions: tracker, hostname: () => 'gw.test', logger });
  const table = new PolicySessions({ engine, clock, idleMs: () => 60_000, max });
  const ask = (attrs: Record<string, string | number>) => {
    const q = req(attrs);
    return table.forRequest(q, protocolStateToStage(q.protocol_state)!);
  };
  return { table, clock, tracker, ask };
}

const req = (attrs: Record<string, string | number>): PolicyRequest => toPolicyRequest(new Map(Object.entries(attrs).map(([k, v]) => [k, String(v)])));
const conn = (state: string, extra: Record<string, string | number> = {}) => ({ protocol_state: state, client_address: '192.0.2.1', client_port: 40000, ...extra });

describe('policy-service sessions', () => {
  it('keys a request by its client connection, else by instance, else not at all', () => {
    expect(sessionKey(req({ client_address: '192.0.2.1', client_port: 4000, server_address: '10.0.0.1', server_port: 25 }))).toBe('c 192.0.2.1 4000 10.0.0.1 25');
    expect(sessionKey(req({ client_address: '192.0.2.1', instance: 'ab.cd' }))).toBe('i ab.cd');
    expect(sessionKey(req({ client_address: '192.0.2.1', instance: '' }))).toBeUndefined();
  });

  it('ties the requests of one SMTP session together; a CONNECT starts a new one; unkeyed requests are sessions of their own', () => {
    const { ask, table, tracker } = setup();
    const a = ask(conn('CONNECT'));
    expect(ask(conn('EHLO', { helo_name: 'c.test' })).s).toBe(a.s);
    expect(a.s.helo).toBe('c.test');
    expect(a.s.client?.text).toBe('192.0.2.1');
    expect(a.s.front).toBe('policy');
    expect(ask(conn('RCPT', { client_port: 40001 })).s).not.toBe(a.s);
    const again = ask(conn('CONNECT'));
    expect(again.s).not.toBe(a.s);
    expect(a.s.closed).toBe(true);
    const lone = ask({ protocol_state: 'RCPT', client_address: '192.0.2.9' });
    expect(ask({ protocol_state: 'RCPT', client_address: '192.0.2.9' }).s).not.toBe(lone.s);
    expect(table.size).toBe(2);
    expect(tracker.total()).toBe(0); // never in the sessions gauge
  });

  it('starts a transaction at MAIL or a new instance; fits recipients to recipient_count and takes the size at data', () => {
    const { ask } = setup();
    const e = ask(conn('MAIL', { sender: 'A@Example.org', size: 500 }));
    expect(e.s.mailFrom).toBe('a@example.org');
    expect(e.s.mailFromDomain).toBe('example.org');
    ask(conn('RCPT', { sender: 'A@Example.org', recipient: 'X@example.net', instance: 'i1' }));
    expect(e.s.rcpt).toBe('x@example.net');
    e.s.rcpts.push('x@example.net', 'y@example.net', 'z@example.net'); // what the front pushes for RCPTs let through
    ask(conn('DATA', { sender: 'A@Example.org', instance: 'i1', recipient_count: 2, size: 500 }));
    expect(e.s.rcpts).toEqual(['x@example.net', 'y@example.net']); // Postfix accepted two
    expect(e.s.messageSize).toBe(500);
    ask(conn('END-OF-MESSAGE', { sender: 'A@Example.org', instance: 'i1', recipient_count: 3, size: 1234 }));
    expect(e.s.rcpts).toEqual(['x@example.net', 'y@example.net', '']);
    expect(e.s.messageSize).toBe(1234);
    e.dataDone = true;
    // the next transaction of the session: a new instance, even without a MAIL request
    ask(conn('RCPT', { sender: 'b@example.org', recipient: 'w@example.net', instance: 'i2' }));
    expect(e.s.mailFrom).toBe('b@example.org');
    expect(e.s.rcpts).toEqual([]);
    expect(e.s.messageSize).toBeUndefined();
    expect(e.dataDone).toBe(false);
    ask(conn('DATA', { sender: 'b@example.org', instance: 'i2', recipient_count: 1, recipient: 'W@example.net' }));
    expect(e.s.rcpts).toEqual(['w@example.net']);
  });

  it('drops sessions idle past the timeout and keeps at most max, least recently asked first', () => {
    const { ask, table, clock } = setup(3);
    const first = ask(conn('CONNECT', { client_port: 1 }));
    clock.advance(30_000);
    ask(conn('CONNECT', { client_port: 2 }));
    clock.advance(30_001);
    ask(conn('CONNECT', { client_port: 3 })); // port 1 is now idle past 60 s
    expect(table.size).toBe(2);
    expect(first.s.closed).toBe(true);
    const two = ask(conn('RCPT', { client_port: 2 })); // touched: now the most recent
    ask(conn('CONNECT', { client_port: 4 }));
    ask(conn('CONNECT', { client_port: 5 })); // over max: port 3 goes, not port 2
    expect(table.size).toBe(3);
    expect(ask(conn('RCPT', { client_port: 2 })).s).toBe(two.s);
    table.clear();
    expect(table.size).toBe(0);
    expect(two.s.closed).toBe(true);
  });
});
