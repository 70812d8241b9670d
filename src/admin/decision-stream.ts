/**
 * Live decisions as server-sent events (`GET /events/decisions`): each stream first gets the
 * decisions it missed (after its `Last-Event-ID`, else the newest few), then every new one.
 *
 *   retry: 2000                     the browser (or the console's reader) reconnects after 2 s
 *   id: 42                          the decision's number, for Last-Event-ID on reconnect
 *   event: decision
 *   data: {"at":…,"cid":…,"front":"smtp","stage":"connect","client":"192.0.2.7","action":"tempfail",…}
 *
 *   event: dropped                  this reader fell behind (or reconnected after the ring moved on):
 *   data: {"dropped":17}            that many decisions were not sent to it
 *
 * Bounded per stream: writes the socket cannot take are queued up to `maxQueue`; past that a
 * decision is dropped for that reader only and counted, and the count is sent once it drains.
 * At most `maxStreams` streams at once (503 AG_ADMIN_STREAMS past that). A comment line every
 * `heartbeatMs` keeps proxies from closing an idle stream. Publishing never waits for a reader.
 */
import type http from 'node:http';
import type { DecisionLog, LoggedDecision } from './decision-log.js';
import { AdminHttpError } from './http.js';

export interface DecisionStreamOptions {
  maxStreams?: number;
  maxQueue?: number;
  heartbeatMs?: number;
  /** How many recent decisions a stream without Last-Event-ID starts with. */
  initial?: number;
  retryMs?: number;
}

interface Reader {
  res: http.ServerResponse;
  queue: string[];
  /** The socket would not take more: queue until 'drain'. */
  blocked: boolean;
  dropped: number;
}

const frame = (d: LoggedDecision): string => `id: ${d.id}\nevent: decision\ndata: ${JSON.stringify(d.event)}\n\n`;
const droppedFrame = (n: number): string => `event: dropped\ndata: ${JSON.stringify({ dropped: n })}\n\n`;

export class DecisionStream {
  private readonly readers = new Set<Reader>();
  private readonly maxStreams: number;
  private readonly maxQueue: number;
  private readonly initial: number;
  private readonly retryMs: number;
  private readonly heartbeat: NodeJS.Timeout;
  /** Decisions not sent to some reader because it was too slow, since start. */
  droppedTotal = 0;

  constructor(
    private readonly log: DecisionLog,
    opts: DecisionStreamOptions = {},
  ) {
    this.maxStreams = opts.maxStreams ?? 16;
    this.maxQueue = opts.maxQueue ?? 256;
    this.initial = opts.initial ?? 50;
    this.retryMs = opts.retryMs ?? 2000;
    this.heartbeat = setInterval(() => this.broadcast(': keepalive\n\n', false), opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  /** Open streams. */
  size(): number {
    return this.readers.size;
  }

  /** Takes over the response: headers, the missed decisions, then live ones until the client goes. */
  open(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.readers.size >= this.maxStreams) {
      res.setHeader('Retry-After', String(Math.ceil(this.retryMs / 1000)));
      throw new AdminHttpError(503, 'AG_ADMIN_STREAMS', `too many live decision streams are open (at most ${this.maxStreams}); try again later`);
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Accel-Buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.flushHeaders();
    const reader: Reader = { res, queue: [], blocked: false, dropped: 0 };
    this.readers.add(reader);
    const done = (): void => {
      this.readers.delete(reader);
    };
    res.on('close', done);
    res.on('error', done);
    res.on('drain', () => this.drain(reader));
    this.write(reader, `retry: ${this.retryMs}\n\n`, false);
    const lastId = Number(req.headers['last-event-id']);
    if (Number.isSafeInteger(lastId) && lastId >= 0 && lastId <= this.log.lastId()) {
      const { decisions, missed } = this.log.since(lastId);
      if (missed > 0) this.write(reader, droppedFrame(missed), false);
      for (const d of decisions) this.write(reader, frame(d), true);
    } else {
      for (const d of this.log.recent(this.initial).reverse()) this.write(reader, frame(d), true);
    }
  }

  /** A new decision for every reader (never blocks: a slow reader's excess is dropped). */
  publish(d: LoggedDecision): void {
    this.broadcast(frame(d), true);
  }

  /** Ends every stream (the listener is closing). */
  close(): void {
    clearInterval(this.heartbeat);
    this.disconnectAll();
  }

  /** Ends every open stream; readers reconnect after their retry delay. */
  disconnectAll(): void {
    for (const r of this.readers) r.res.end();
    this.readers.clear();
  }

  private broadcast(text: string, droppable: boolean): void {
    for (const r of this.readers) this.write(r, text, droppable);
  }

  private write(r: Reader, text: string, droppable: boolean): void {
    if (r.res.writableEnded || r.res.destroyed) return;
    if (r.blocked) {
      if (r.queue.length < this.maxQueue) r.queue.push(text);
      else if (droppable) {
        r.dropped++;
        this.droppedTotal++;
      }
      return;
    }
    if (!r.res.write(text)) r.blocked = true;
  }

  private drain(r: Reader): void {
    r.blocked = false;
    const queued = r.queue;
    r.queue = [];
    if (r.dropped > 0) {
      queued.push(droppedFrame(r.dropped));
      r.dropped = 0;
    }
    for (let i = 0; i < queued.length; i++) {
      if (!r.res.write(queued[i]!)) {
        r.blocked = true;
        r.queue = queued.slice(i + 1).concat(r.queue);
        return;
      }
    }
  }
}
