/**
 * The live decision stream over a real HTTP server and real sockets: the SSE framing, resuming
 * after Last-Event-ID, the cap on streams, and a reader that stops reading: its excess is
 * dropped (for it alone), counted, and told once it reads again.
 */
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DecisionLog } from '../../../src/admin/decision-log.js';
import { DecisionStream } from '../../../src/admin/decision-stream.js';
import { AdminHttpError } from '../../../src/admin/http.js';
import type { DecisionEvent } from '../../../src/events.js';
import { waitFor } from '../../helpers/wait.js';

const ev = (i: number, pad = ''): DecisionEvent => ({ at: i, cid: `c${i}`, front: 'smtp', stage: 'connect', client: '192.0.2.1', action: 'tempfail', policy: 'flood', reply: `421 4.7.0 no${pad}` });

describe('DecisionStream', () => {
  let server: http.Server | undefined;
  let stream: DecisionStream | undefined;
  const sockets: net.Socket[] = [];

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    stream?.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  const serve = async (log: DecisionLog, opts: ConstructorParameters<typeof DecisionStream>[1]): Promise<number> => {
    const s = new DecisionStream(log, opts);
    stream = s;
    server = http.createServer((req, res) => {
      try {
        s.open(req, res);
      } catch (e) {
        const err = e as AdminHttpError;
        res.writeHead(err.status, { 'content-type': 'application/json' }).end(JSON.stringify({ code: err.code }));
      }
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return (server.address() as net.AddressInfo).port;
  };

  /** A raw client: what it has read so far. */
  const client = (port: number, headers = ''): { sock: net.Socket; text: () => string } => {
    const sock = net.connect(port, '127.0.0.1');
    sockets.push(sock);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (buf += d));
    sock.on('error', () => {});
    sock.write(`GET /events/decisions HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`);
    return { sock, text: () => buf };
  };

  it('frames decisions as SSE with retry and ids; a reconnect with Last-Event-ID gets only what it missed', async () => {
    const log = new DecisionLog(100);
    for (let i = 1; i <= 3; i++) log.push(ev(i));
    const port = await serve(log, { initial: 2, retryMs: 1500 });
    const first = client(port);
    await waitFor(() => first.text().includes('id: 3'));
    expect(first.text()).toContain('Content-Type: text/event-stream');
    expect(first.text()).toContain('retry: 1500\n\n');
    expect(first.text()).not.toContain('id: 1\n'); // the newest 2 only
    expect(first.text()).toContain(`id: 2\nevent: decision\ndata: ${JSON.stringify(ev(2))}\n\n`);
    stream!.publish(log.push(ev(4)));
    await waitFor(() => first.text().includes('id: 4'));

    const again = client(port, 'Last-Event-ID: 3\r\n');
    await waitFor(() => again.text().includes('id: 4'));
    expect(again.text()).not.toContain('id: 3\n');
  });

  it('tells a reader that comes back after the ring moved on how many it missed', async () => {
    const log = new DecisionLog(2);
    for (let i = 1; i <= 6; i++) log.push(ev(i));
    const port = await serve(log, {});
    const c = client(port, 'Last-Event-ID: 1\r\n');
    await waitFor(() => c.text().includes('id: 6'));
    expect(c.text()).toContain('event: dropped\ndata: {"dropped":3}\n\n');
  });

  it('refuses streams past the cap with 503 AG_ADMIN_STREAMS', async () => {
    const port = await serve(new DecisionLog(), { maxStreams: 2 });
    const a = client(port);
    const b = client(port);
    await waitFor(() => a.text().includes('retry:') && b.text().includes('retry:'));
    expect(stream!.size()).toBe(2);
    const c = client(port);
    await waitFor(() => c.text().includes('503'));
    expect(c.text()).toContain('AG_ADMIN_STREAMS');
    a.sock.destroy();
    await waitFor(() => stream!.size() === 1);
  });

  it('a reader that stops reading loses the excess (counted, told later); the others get everything', async () => {
    const log = new DecisionLog(10);
    const port = await serve(log, { maxQueue: 4 });
    const slow = client(port);
    const fast = client(port);
    await waitFor(() => slow.text().includes('retry:') && fast.text().includes('retry:'));
    slow.sock.pause();
    const pad = 'x'.repeat(64 * 1024);
    let n = 0;
    // Publish, each once the reading client has it, until the paused socket's buffers are full
    // and its queue overflowed (bounded: the loopback buffers are a few MB).
    while (stream!.droppedTotal === 0 && n < 600) {
      stream!.publish(log.push(ev(++n, pad)));
      await waitFor(() => fast.text().includes(`id: ${n}\n`), 20_000);
    }
    expect(stream!.droppedTotal).toBeGreaterThan(0);
    expect(fast.text()).not.toContain('event: dropped');
    slow.sock.resume();
    await waitFor(() => /event: dropped\ndata: \{"dropped":\d+\}/.test(slow.text()), 20_000);
    const told = Number(/event: dropped\ndata: \{"dropped":(\d+)\}/.exec(slow.text())![1]);
    expect(told).toBe(stream!.droppedTotal);
  });
});
