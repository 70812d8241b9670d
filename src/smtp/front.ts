/**
 * The SMTP front: listeners, PROXY/XCLIENT trust, and the smtp-server instances whose hooks
 * hand each client's session to a ProxySession (which asks the session engine and relays to
 * the backend in lockstep). Nothing here decides anything about series or policies.
 */
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { Logger } from 'pino';
import type { Config, HostPort } from '../config/types.js';
import type { SessionEngine } from '../audit/session.js';
import type { GatewayEvents } from '../events.js';
import { cidrMatcher, type CidrMatcher } from '../policy/compile.js';
import { parseClientAddress, type ClientAddress } from '../series/address.js';
import { listenOn } from '../listen.js';
import { looksLikeProxyHeader, readProxyHeader } from './proxy-protocol.js';
import type { Relay } from './relay/types.js';
import { quietTranscript, smtpServerLogger } from './server-logger.js';
import { GatewayConnection, type HeloHook } from './connection.js';
import { advertisedExtensions } from './extensions.js';
import { ProxySession, type ProxyStats } from './proxy-session.js';
import { clientFault, endOnce } from './socket-errors.js';
import { connectionId } from './connection-id.js';

export interface FrontDeps {
  config: () => Config;
  engine: SessionEngine;
  relay: () => Relay;
  events: GatewayEvents;
  logger: Logger;
}

const PROXY_HEADER_TIMEOUT_MS = 5000;

export class SmtpFront {
  private readonly listeners: net.Server[] = [];
  private plain!: SMTPServer;
  private xclient!: SMTPServer;
  private proxyTrusted!: CidrMatcher;
  private xclientTrusted!: CidrMatcher;
  private readonly proxies = new Map<string, ProxySession>();
  /** Every live SMTP connection, whichever smtp-server instance (plain, XCLIENT, pre-reload) owns it. */
  private readonly connections = new Set<GatewayConnection>();
  private closing = false;
  readonly stats: ProxyStats = { relayFailures: 0, auth: { ok: 0, failed: 0, refused: 0, tempfail: 0 } };

  constructor(private readonly deps: FrontDeps) {
    this.build(deps.config());
  }

  /** (Re)builds the smtp-server instances from config; existing sessions keep their instance. */
  build(config: Config): void {
    this.proxyTrusted = cidrMatcher(config.server.proxy_protocol);
    this.xclientTrusted = cidrMatcher(config.server.xclient);
    const base = this.options(config);
    this.plain = this.guarded(new SMTPServer({ ...base, useXClient: false }));
    this.xclient = this.guarded(new SMTPServer({ ...base, useXClient: true }));
  }

  /** An smtp-server instance that can never take the process down with an 'error' event. */
  private guarded(server: SMTPServer): SMTPServer {
    server.on('error', (err: Error) => this.deps.logger.warn({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'smtp server error'));
    return quietTranscript(server, this.deps.logger);
  }

  /** Options both smtp-server instances share (TLS files read once per build). */
  private options(config: Config): SMTPServerOptions {
    const s = config.server;
    const opts: SMTPServerOptions = {
      name: s.hostname,
      size: s.max_message_size,
      socketTimeout: s.idle_timeout * 1000,
      closeTimeout: 30_000,
      authOptional: true,
      disabledCommands: [...(s.auth.enabled ? [] : ['AUTH']), ...(s.tls ? [] : ['STARTTLS'])],
      authMethods: ['PLAIN', 'LOGIN'],
      // the relay passes on no DSN parameters (RET, ENVID, NOTIFY, ORCPT) and no REQUIRETLS:
      // offering them would promise what the backend never hears of
      hideDSN: true,
      hideREQUIRETLS: true,
      allowInsecureAuth: s.auth.allow_plaintext,
      disableReverseLookup: true,
      logger: smtpServerLogger(this.deps.logger.child({ component: 'smtp' })) as unknown as SMTPServerOptions['logger'],
      onConnect: (session, cb) => this.open(session).connect(session, cb),
      onAuth: (auth, session, cb) => void this.proxy(session, cb)?.authenticate(auth, session, cb),
      onMailFrom: (address, session, cb) => this.proxy(session, cb)?.mail(address, session, cb),
      onRcptTo: (address, session, cb) => this.proxy(session, cb)?.rcpt(address, session, cb),
      onData: (stream, session, cb) => {
        const p = this.proxy(session, cb);
        if (p) p.data(stream, session, cb);
        else stream.resume();
      },
      onClose: (session) => this.onClose(session),
    };
    (opts as Record<string, unknown>).maxCommandLength = s.max_line_length;
    if (s.banner) opts.banner = s.banner;
    if (s.tls) {
      opts.key = readFileSync(s.tls.key);
      opts.cert = readFileSync(s.tls.cert);
    } else {
      opts.hideSTARTTLS = true;
    }
    return opts;
  }

  /** Binds every address; a failure closes what was bound and names the key and address. */
  async listen(addresses: readonly HostPort[]): Promise<void> {
    for (const a of addresses) {
      const server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
      try {
        await listenOn(server, a, 'server.listen');
      } catch (err) {
        await this.unbind();
        throw err;
      }
      server.on('error', (err) => this.deps.logger.error({ err }, 'listener error'));
      this.listeners.push(server);
    }
  }

  addresses(): HostPort[] {
    return this.listeners.map((l) => {
      const a = l.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    });
  }

  openSessions(): number {
    return this.proxies.size;
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => {});
    // A client that reset before the connection was accepted has no address: nothing to serve.
    const peer = parseClientAddress(socket.remoteAddress);
    if (!peer) {
      this.deps.logger.debug({ raw: socket.remoteAddress }, 'connection without a peer address dropped');
      socket.destroy();
      return;
    }
    if (this.closing) {
      endOnce(socket, `421 4.3.2 Service shutting down [${this.deps.config().server.hostname}]\r\n`);
      return;
    }
    const id = connectionId();
    if (this.proxyTrusted(peer)) {
      socket.resume();
      readProxyHeader(socket, PROXY_HEADER_TIMEOUT_MS).then(
        (info) => {
          const opts: Record<string, unknown> = { id };
          if (info.sourceAddress) opts.remoteAddress = info.sourceAddress;
          if (info.sourcePort) opts.remotePort = info.sourcePort;
          // XCLIENT trust belongs to the client the header names, not to the proxy in front of it.
          const client = info.sourceAddress === undefined ? peer : parseClientAddress(info.sourceAddress);
          this.connect(this.serverFor(client), socket, opts);
        },
        (err: Error) => {
          if (socket.destroyed) {
            this.deps.logger.debug({ peer: peer.text, err: err.message }, 'client left before its PROXY header');
            return;
          }
          this.deps.logger.info({ peer: peer.text, err: err.message }, 'bad PROXY header from a trusted peer');
          endOnce(socket, `554 5.5.4 Invalid PROXY header [${id}@${this.deps.config().server.hostname}]\r\n`);
        },
      );
      return;
    }
    // Anyone else sending a PROXY header is refused: it would otherwise spoof its address.
    const sniff = (chunk: Buffer): void => {
      if (!looksLikeProxyHeader(chunk)) return;
      this.deps.logger.info({ peer: peer.text, cid: id }, 'PROXY header from an untrusted peer refused');
      endOnce(socket, `554 5.7.1 PROXY header not accepted from ${peer.text} [${id}@${this.deps.config().server.hostname}]\r\n`);
    };
    socket.prependOnceListener('data', sniff);
    // With trusted PROXY peers, a stray header is most likely a proxy that is not listed: hold
    // the greeting briefly, so one sent on connect is refused before any 220 (see README).
    const s = this.deps.config().server;
    const holdMs = s.proxy_protocol.length > 0 ? s.proxy_header_wait * 1000 : 0;
    this.connect(this.serverFor(peer), socket, { id }, holdMs);
  }

  /** The smtp-server instance for a client: the one that offers XCLIENT only to trusted peers. */
  private serverFor(client: ClientAddress | undefined): SMTPServer {
    return this.xclientTrusted(client) ? this.xclient : this.plain;
  }

  /**
   * SMTPServer.connect() as the library does it, except for the greeting delay: the library waits
   * a fixed 100 ms before every greeting (its early-talker check), which caps a gateway's session
   * rate at concurrency / 0.1 s. auditgate makes it `server.greet_delay` (default 0).
   */
  private connect(target: SMTPServer, socket: net.Socket, opts: Record<string, unknown>, holdMs = 0): void {
    const s = this.deps.config().server;
    const limits = { maxTransactions: s.max_transactions, maxErrors: s.max_errors, maxJunkCommands: s.max_junk_commands, maxTransactionMs: s.max_transaction_time * 1000 };
    const conn = new GatewayConnection(target, socket, opts, this.heloHook, limits);
    const internals = target as unknown as { connections: Set<unknown>; _onClientConnect(data: unknown): void };
    internals.connections.add(conn);
    this.connections.add(conn);
    socket.once('close', () => this.connections.delete(conn));
    // The library leaves socket errors inside a transaction to its server's 'error' event, which
    // would crash the process: each one is logged and ends its own connection only.
    conn.on('error', (err: Error) => this.connectionError(conn, err));
    conn.on('connect', (data: unknown) => internals._onClientConnect(data));
    conn.on('deadline', (ms: number) => this.deps.logger.info({ cid: conn.id, client: conn.remoteAddress, maxMs: ms }, 'transaction took too long: client cut off (server.max_transaction_time)'));
    const delayMs = Math.max(s.greet_delay * 1000, holdMs);
    conn._setListeners(() => {
      // One limit for the whole front, across the plain and XCLIENT servers and across reloads.
      if (this.connections.size > this.deps.config().server.max_clients) {
        conn.send(421, `4.7.0 Too many connected clients, try again in a moment [${String(opts.id)}@${s.hostname}]`, false);
        return;
      }
      if (delayMs > 0) setTimeout(() => conn.connectionReady(), delayMs).unref();
      else conn.connectionReady();
    });
  }

  /** A socket or TLS error of one connection: logged at a level that says whose fault it is, then that connection goes. */
  private connectionError(conn: GatewayConnection, err: Error): void {
    const meta = { cid: conn.id, client: conn.remoteAddress, code: (err as NodeJS.ErrnoException).code, err: err.message };
    switch (clientFault(err)) {
      case 'left':
        this.deps.logger.debug(meta, 'client left');
        break;
      case 'tls':
        this.deps.logger.info(meta, 'client TLS handshake failed');
        break;
      default:
        this.deps.logger.warn(meta, 'connection error');
    }
    conn.destroySocket();
  }

  // ---- hooks → ProxySession -----------------------------------------------------------------

  private open(session: SMTPServerSession): ProxySession {
    const c = this.deps.config().server;
    const p = new ProxySession(
      {
        engine: this.deps.engine,
        relay: this.deps.relay,
        hostname: () => this.deps.config().server.hostname,
        maxRecipients: () => c.max_recipients,
        stats: this.stats,
        events: this.deps.events,
        logger: this.deps.logger,
      },
      session,
    );
    this.proxies.set(session.id, p);
    return p;
  }

  /** The session's ProxySession; none means it closed meanwhile (the callback gets a 421). */
  private proxy(session: SMTPServerSession, cb: (err: Error) => void): ProxySession | undefined {
    const p = this.proxies.get(session.id);
    if (!p) cb(Object.assign(new Error('4.3.0 Session is gone'), { responseCode: 421 }));
    return p;
  }

  /** HELO/EHLO (see GatewayConnection). */
  private readonly heloHook: HeloHook = {
    onHelo: (conn, proceed, refuse) => {
      const p = this.proxies.get(conn.session.id);
      if (p) p.helo(conn.session, proceed, refuse);
      else proceed();
    },
    // no more than every backend offers, as the relay last saw them
    extensions: (lines) => advertisedExtensions(lines, this.deps.relay().capabilities()),
  };

  private onClose(session: SMTPServerSession): void {
    const p = this.proxies.get(session.id);
    if (!p) return;
    this.proxies.delete(session.id);
    p.close();
  }

  private async unbind(): Promise<void> {
    await Promise.all(this.listeners.map((l) => new Promise<void>((r) => l.close(() => r()))));
    this.listeners.length = 0;
  }

  /** Stops accepting, lets open sessions finish (up to drainMs), then closes the rest. */
  async close(drainMs = 10_000): Promise<void> {
    this.closing = true;
    await this.unbind();
    const deadline = Date.now() + drainMs;
    while (this.proxies.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of this.connections) c.close();
    // Whoever is still connected has had its 421; their backend transactions go now, and a
    // client that never closes its side is cut off shortly after.
    for (const p of this.proxies.values()) p.abort();
    if (this.connections.size > 0) {
      await new Promise((r) => setTimeout(r, 200));
      for (const c of this.connections) c.destroySocket();
    }
  }
}
