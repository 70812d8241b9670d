/**
 * The listeners of a front an MTA calls (milter, policy service): binds its `listen` addresses
 * (TCP or unix-domain), keeps one `max_connections` limit across them (read at each accept, so
 * a reload applies it), counts what /metrics shows, and on close stops listening and drops the
 * MTA connections (the MTA then applies its default action: `milter_default_action`,
 * `default_action` of check_policy_service).
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { ListenAddress, MtaFrontConfig } from '../config/types.js';
import { boundAddress, listenOn } from '../listen.js';

export type MtaFrontKind = 'milter' | 'policy';

/** What /metrics shows of an MTA front (read at scrape time). */
export interface MtaFrontStats {
  /** Connections accepted since start. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Connections closed at once because max_connections were open. */
  refused: number;
  /** Connections closed for a malformed packet or request. */
  protocolErrors: number;
  /** Connections closed after idle_timeout of silence. */
  idleTimeouts: number;
  /** Answers a tarpit is holding back now. */
  holding: number;
  /** Milter: sessions begun (CONNECT); policy service: requests answered. */
  events: number;
}

export interface MtaListenerOptions {
  kind: MtaFrontKind;
  /** The config key, for messages: "milter", "policy_service". */
  key: 'milter' | 'policy_service';
  /** The front's current settings (a reload replaces them; the listen addresses need a restart). */
  settings: () => MtaFrontConfig | undefined;
  logger: Logger;
  /** Serves one accepted MTA connection (the front's protocol). */
  serve: (socket: net.Socket) => void;
  /** Called once the front is closed (state that outlives connections goes). */
  closed?: () => void;
}

/** Log "max_connections reached" at most this often. */
const REFUSAL_LOG_MS = 10_000;

export class MtaListener {
  readonly stats: MtaFrontStats = { connections: 0, open: 0, refused: 0, protocolErrors: 0, idleTimeouts: 0, holding: 0, events: 0 };
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private lastRefusalLog = -Infinity;

  constructor(private readonly opts: MtaListenerOptions) {}

  get kind(): MtaFrontKind {
    return this.opts.kind;
  }

  /** Binds every address; a failure closes what was bound and names the key and the address. */
  async listen(addresses: readonly ListenAddress[]): Promise<void> {
    for (const a of addresses) {
      // half-open: a policy client may shut down its side after its request and still read the answer
      const server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
      try {
        await listenOn(server, a, `${this.opts.key}.listen`);
      } catch (err) {
        await this.unbind();
        throw err;
      }
      server.on('error', (err) => this.opts.logger.error({ err, front: this.opts.kind }, 'listener error'));
      this.servers.push(server);
    }
  }

  /** Where the listeners are bound (port 0 resolved). */
  addresses(): ListenAddress[] {
    return this.servers.map(boundAddress).filter((a): a is ListenAddress => a !== undefined);
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => {});
    const max = this.opts.settings()?.max_connections ?? 0;
    if (this.sockets.size >= max) {
      this.stats.refused++;
      const now = Date.now();
      if (now - this.lastRefusalLog >= REFUSAL_LOG_MS) {
        this.lastRefusalLog = now;
        this.opts.logger.warn({ front: this.opts.kind, max_connections: max, refused: this.stats.refused }, `${this.opts.key}.max_connections reached: MTA connection closed`);
      }
      socket.destroy();
      return;
    }
    this.stats.connections++;
    this.stats.open++;
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.stats.open--;
    });
    this.opts.serve(socket);
  }

  private async unbind(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers.length = 0;
  }

  /** Stops listening (a unix socket file is removed) and drops every MTA connection. */
  async close(): Promise<void> {
    const unbound = this.unbind();
    for (const s of this.sockets) s.destroy();
    await unbound;
    this.opts.closed?.();
  }
}
