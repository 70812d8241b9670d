/**
 * Clients that vanish at every step of a session, many at once, against both backend kinds
 * (CHUNKING and DATA only): the gateway keeps serving, every backend transaction is released,
 * and exactly the messages the clients saw a 250 for reach the backend.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBdatBackend, type BdatBackend } from '../helpers/bdat-backend.js';
import { proxyV1, startTestGateway, type TestGateway } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});


/** Resolves once `value()` has not changed for 200 ms (5 s at most). */
async function settled(value: () => number): Promise<void> {
  let last = value();
  let since = Date.now();
  const deadline = Date.now() + 5000;
  while (Date.now() - since < 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    const v = value();
    if (v !== last) {
      last = v;
      since = Date.now();
    }
  }
}

/** Deterministic pseudo-random numbers. */
function rng(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
}

interface Outcome {
  id: string;
  /** The whole message, terminator included, went out. */
  sentAll: boolean;
  /** The client read a 250 for it. */
  acked: boolean;
}

/**
 * One session: EHLO, MAIL, RCPT, DATA, body, QUIT, vanishing (socket destroyed) at `stopAt`:
 * 0-3 right after the greeting / EHLO / MAIL / RCPT reply, 4 half way through the body, 5 just
 * after the whole body (before the reply), 6 after the 250 without QUIT, 7 never.
 */
function session(port: number, i: number, stopAt: number, bodyBytes: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setEncoding('latin1');
    const id = `m${i}`;
    const line = `${'z'.repeat(76)}\r\n`;
    const body = `Subject: ${id}\r\nX-Id: ${id}\r\n\r\n${line.repeat(Math.max(1, Math.ceil(bodyBytes / line.length)))}`;
    const out: Outcome = { id, sentAll: false, acked: false };
    let replies = 0;
    let buf = '';
    let done = false;
    const end = (): void => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve(out);
    };
    const onReply = (code: number): void => {
      const k = replies++;
      if (k === 5 && code === 250) out.acked = true;
      if (code >= 400 || k >= 6 || stopAt === k || (k === 5 && stopAt === 6)) return end();
      if (k === 0) sock.write('EHLO c.test\r\n');
      else if (k === 1) sock.write(`MAIL FROM:<${id}@example.org>\r\n`);
      else if (k === 2) sock.write('RCPT TO:<r@example.net>\r\n');
      else if (k === 3) sock.write('DATA\r\n');
      else if (k === 4) {
        sock.write(body.slice(0, body.length >> 1));
        if (stopAt === 4) return end();
        sock.write(`${body.slice(body.length >> 1)}.\r\n`);
        out.sentAll = true;
        if (stopAt === 5) return end();
      } else if (k === 5) sock.write('QUIT\r\n');
    };
    sock.on('connect', () => sock.write(proxyV1(`198.51.100.${(i % 250) + 1}`)));
    sock.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\r\n'); nl >= 0 && !done; nl = buf.indexOf('\r\n')) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (l[3] !== '-') onReply(Number(l.slice(0, 3)));
      }
    });
    sock.on('close', end);
    sock.on('error', () => undefined);
  });
}

describe('clients that vanish mid-session', () => {
  for (const chunking of [true, false]) {
    it(`${chunking ? 'CHUNKING' : 'DATA-only'} backend: nothing leaks, only acknowledged mail is delivered`, async () => {
      const backend: BdatBackend = await startBdatBackend({ chunking });
      const gw: TestGateway = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: 'series: {}\n' });
      cleanups.push(() => backend.close(), () => gw.close());
      const rand = rng(chunking ? 7 : 11);
      const results: Array<Promise<Outcome>> = [];
      // 240 sessions, 24 at a time; a third run to the end, the rest vanish at a random step;
      // bodies from 100 bytes to 200 KiB, so some need several chunks
      for (let i = 0; i < 240; i++) {
        const stopAt = rand(3) === 0 ? 7 : rand(7);
        results.push(session(gw.port, i, stopAt, rand(4) === 0 ? 200_000 : 100 + rand(3000)));
        if (results.length % 24 === 0) await Promise.all(results.slice(-24));
      }
      const outcomes = await Promise.all(results);
      const acked = new Set(outcomes.filter((o) => o.acked).map((o) => o.id));
      const sentAll = new Set(outcomes.filter((o) => o.sentAll).map((o) => o.id));
      expect(acked.size).toBeGreaterThan(40);
      expect(outcomes.some((o) => !o.sentAll)).toBe(true);
      await waitFor(() => gw.gateway.front.openSessions() === 0);
      await waitFor(() => gw.gateway.relay.stats().active === 0);
      await settled(() => backend.messages.length);
      // every acknowledged message was delivered, once; nothing half-sent was
      const delivered = backend.messages.map((m) => /^X-Id: (m\d+)$/m.exec(m.data.toString('latin1'))?.[1] ?? '?');
      expect(new Set(delivered).size).toBe(delivered.length);
      for (const id of acked) expect(delivered).toContain(id);
      for (const id of delivered) expect(sentAll.has(id)).toBe(true);
      for (const m of backend.messages) {
        const id = /^X-Id: (m\d+)$/m.exec(m.data.toString('latin1'))?.[1];
        expect(m.from).toBe(`${id}@example.org`);
        expect(m.via).toBe(chunking ? 'bdat' : 'data');
      }
      // and the gateway still serves a normal session
      const last = await session(gw.port, 999, 7, 500);
      expect(last.acked).toBe(true);
      expect(backend.messages.some((m) => m.data.toString('latin1').includes('X-Id: m999\r\n'))).toBe(true);
      // a client that vanishes is the client's doing, not a relay failure
      expect(gw.gateway.relay.stats().failures).toBe(0);
      expect(gw.gateway.front.stats.relayFailures).toBe(0);
    });
  }
});

describe('a client that vanishes right after its end of data', () => {
  for (const chunking of [true, false]) {
    it(`${chunking ? 'CHUNKING' : 'DATA-only'} backend still deciding: the transaction is aborted, no message is kept`, async () => {
      // the backend answers (and keeps the message) 300 ms after the end of the message
      const backend = await startBdatBackend({ chunking, holdFinalMs: 300 });
      const gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: 'series: {}\n' });
      cleanups.push(() => backend.close(), () => gw.close());
      const out = await session(gw.port, 1, 5, 2000); // sends everything, then vanishes
      expect(out).toMatchObject({ sentAll: true, acked: false });
      await waitFor(() => gw.gateway.relay.stats().active === 0);
      await new Promise((r) => setTimeout(r, 500));
      expect(backend.messages).toHaveLength(0);
      // a client that stays gets its mail through the same way
      const ok = await session(gw.port, 2, 7, 2000);
      expect(ok.acked).toBe(true);
      expect(backend.messages).toHaveLength(1);
    });
  }
});
