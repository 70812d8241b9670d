/** An HTTP receiver of alerts on 127.0.0.1: records every POST's JSON body, answers 200, 503 or nothing. */
import http from 'node:http';
import type net from 'node:net';

export interface Receiver {
  url: string;
  requests: Array<{ headers: http.IncomingHttpHeaders; body: Record<string, unknown> }>;
  /** Requests held without an answer (mode "hang"). */
  held: http.ServerResponse[];
  answered: number;
  /** Answers every held request, and every later one, with 200. */
  release(): void;
  close(): Promise<void>;
}

/** An HTTP receiver: answers 200 ("ok"), 503 ("fail") or nothing at all ("hang"). */
export async function receiver(initial: 'ok' | 'fail' | 'hang'): Promise<Receiver> {
  let mode = initial;
  const r: Receiver = { url: '', requests: [], held: [], answered: 0, release: () => {}, close: async () => {} };
  const answer = (res: http.ServerResponse): void => {
    r.answered++;
    res.statusCode = mode === 'fail' ? 503 : 200;
    res.end();
  };
  r.release = () => {
    mode = 'ok';
    for (const res of r.held.splice(0)) answer(res);
  };
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      r.requests.push({ headers: req.headers, body: JSON.parse(text) as Record<string, unknown> });
      if (mode === 'hang') r.held.push(res);
      else answer(res);
    });
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`;
  r.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return r;
}
