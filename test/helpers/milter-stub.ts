/**
 * A tiny milter on 127.0.0.1:0 built on the codec (src/milter): negotiates with negotiate(),
 * records every command it decodes, and answers "continue" wherever the MTA waits for a reply,
 * unless `answer` returns another reply. A protocol error is recorded and closes that
 * connection, as the real front will.
 */
import net from 'node:net';
import type { MilterProtocolError } from '../../src/errors.js';
import { MilterDecoder } from '../../src/milter/codec.js';
import { expectsReply, negotiate, type MilterWants, type Negotiation } from '../../src/milter/negotiate.js';
import type { MilterCommand } from '../../src/milter/protocol.js';
import { encodeContinue, encodeOptneg } from '../../src/milter/replies.js';

export interface StubSession {
  commands: MilterCommand[];
  negotiation?: Negotiation;
  error?: MilterProtocolError;
  closed: boolean;
}

export interface StubMilter {
  port: number;
  sessions: StubSession[];
  close(): Promise<void>;
}

export async function startStubMilter(opts: { wants?: MilterWants; answer?: (c: MilterCommand, s: StubSession) => Buffer | undefined } = {}): Promise<StubMilter> {
  const sessions: StubSession[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    const s: StubSession = { commands: [], closed: false };
    sessions.push(s);
    const decoder = new MilterDecoder();
    const fail = (err: MilterProtocolError) => {
      s.error = err;
      sock.destroy();
    };
    sock.on('data', (chunk: Buffer) => {
      const r = decoder.push(chunk);
      for (const c of r.messages) {
        s.commands.push(c);
        if (c.type === 'optneg') {
          const n = negotiate(c, opts.wants);
          if (!('reply' in n)) return fail(n);
          s.negotiation = n;
          sock.write(encodeOptneg(n.reply));
        } else if (s.negotiation && expectsReply(s.negotiation, c)) {
          sock.write(opts.answer?.(c, s) ?? encodeContinue());
        }
        if (c.type === 'quit') sock.end();
      }
      if (r.error) fail(r.error);
    });
    sock.on('end', () => {
      const err = decoder.end();
      if (err) s.error = err;
    });
    sock.on('close', () => {
      s.closed = true;
      sockets.delete(sock);
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
