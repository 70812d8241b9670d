import { describe, expect, it } from 'vitest';
import { RelayError } from '../../src/errors.js';
import { waitFor } from '../helpers/wait.js';
import { startBackend, startScripted, smtpRelay, msg, envelope } from './relay-helpers.js';

describe('smtp relay connection pool', () => {
  it('reuses one backend connection for sequential transactions', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port, { poolSize: 1 });
    for (let i = 0; i < 3; i++) {
      const tx = await relay.begin({ clientAddress: '192.0.2.1' });
      await envelope(tx, `a${i}@client.test`, ['b@backend.test']);
      expect((await tx.data(msg(`Subject: ${i}\r\n\r\nbody ${i}\r\n`), '')).code).toBe(250);
      await tx.release();
    }
    expect(backend.connections).toBe(1);
    expect(backend.received.map((r) => r.from)).toEqual(['a0@client.test', 'a1@client.test', 'a2@client.test']);
    expect(relay.stats()).toMatchObject({ opened: 1, reused: 2, idle: 1, active: 0, messages: 3 });
  });

  it('pool_size 0 opens a connection per transaction', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port, { poolSize: 0 });
    for (let i = 0; i < 2; i++) {
      const tx = await relay.begin({ clientAddress: '192.0.2.1' });
      await envelope(tx, 'a@client.test', ['b@backend.test']);
      await tx.release();
    }
    expect(backend.connections).toBe(2);
    expect(relay.stats().idle).toBe(0);
  });

  it('a connection whose transaction was aborted is not reused', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const tx1 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx1, 'a@client.test', ['b@backend.test']);
    tx1.abort();
    await tx1.release(); // no-op after abort
    const tx2 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx2, 'c@client.test', ['b@backend.test']);
    expect((await tx2.data(msg('x\r\n'), '')).code).toBe(250);
    await tx2.release();
    expect(backend.connections).toBe(2);
    expect(backend.received.map((r) => r.from)).toEqual(['c@client.test']);
  });

  it('drops idle connections the backend closes, silently, and reconnects', async () => {
    const backend = await startBackend({ socketTimeout: 200 });
    const relay = smtpRelay(backend.port);
    const tx1 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx1, 'a@client.test', ['b@backend.test']);
    await tx1.release();
    expect(relay.stats().idle).toBe(1);
    // the backend times the idle connection out (421 + close)
    await waitFor(() => relay.stats().idle === 0);
    const tx2 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx2, 'c@client.test', ['b@backend.test']);
    expect((await tx2.data(msg('x\r\n'), '')).code).toBe(250);
    await tx2.release();
    expect(backend.connections).toBe(2);
  });

  it('retries MAIL once on a fresh connection when a pooled one turns out dead', async () => {
    const s = await startScripted('drop-second-mail');
    const relay = smtpRelay(s.port);
    const tx1 = await relay.begin({ clientAddress: '192.0.2.1' });
    await envelope(tx1, 'a@client.test', ['b@backend.test']);
    await tx1.release();
    expect(relay.stats().idle).toBe(1);
    const tx2 = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await tx2.mailFrom('c@client.test')).code).toBe(250);
    expect((await tx2.rcptTo('b@backend.test')).code).toBe(250);
    await tx2.release();
    expect(relay.stats()).toMatchObject({ opened: 2, reused: 1, idle: 1 });
  });

  it('transaction steps cannot overlap and cannot run after release', async () => {
    const backend = await startBackend();
    const relay = smtpRelay(backend.port);
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    const first = tx.mailFrom('a@client.test');
    await expect(tx.rcptTo('b@backend.test')).rejects.toBeInstanceOf(RelayError);
    expect((await first).code).toBe(250);
    await tx.release();
    await expect(tx.rcptTo('b@backend.test')).rejects.toBeInstanceOf(RelayError);
  });
});
