/**
 * The SMTP front: listeners, PROXY/XCLIENT trust, and thin smtp-server hooks that turn SMTP
 * commands into stage events for the recorder and decisions into replies, relaying each
 * accepted step to the backend in lockstep.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerAuthentication,
  type SMTPServerAuthenticationResponse,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';
import type { Logger } from 'pino';
import type { Config, HostPort, Stage } from '../config/schema.js';
import type { Recorder, StageResult } from '../audit/recorder.js';
import type { SessionTracker } from '../audit/sessions.js';
import type { EventContext } from '../policy/evaluate.js';
import { cidrMatcher, type CidrMatcher } from '../policy/compile.js';
import { normalizeAddress } from '../series/address.js';
import { refusalReply, smtpError, STORE_FAILURE_REPLY, type SmtpError } from './replies.js';
import { looksLikeProxyHeader, readProxyHeader } from './proxy-protocol.js';
import type { AuthenticatedRelay, Relay, RelayAuthResult, RelayTransaction, SmtpReply } from './relay.js';
import { smtpServerLogger } from '../log.js';
import { MessageAbortedError, RelayError } from '../errors.js';
import { GatewayConnection, type HeloHook } from './connection.js';

interface ClientState {
  cid: string;
  tag: string;
  ip: string;
  /** session.remoteAddress as last seen (XCLIENT changes it). */
  rawAddress: string;
  /** An `accept` policy at connect trusts the session: later stages record but skip policies. */
  trusted: boolean;
  tx?: RelayTransaction;
  /** After a successful AUTH: the backend session authenticated as this client's user. */
  auth?: AuthenticatedRelay;
  timers: Set<NodeJS.Timeout>;
  closed: boolean;
}

export interface FrontDeps {
  config: () => Config;
  recorder: Recorder;
  sessions: SessionTracker;
  relay: () => Relay;
  logger: Logger;
}

const PROXY_HEADER_TIMEOUT_MS = 5000;

export type AuthResult = 'ok' | 'failed' | 'refused' | 'tempfail';

export class SmtpFront {
  private readonly listeners: net.Server[] = [];
  private plain!: SMTPServer;
  private xclient!: SMTPServer;
  private proxyTrusted!: CidrMatcher;
  private xclientTrusted!: CidrMatcher;
  private readonly states = new Map<string, ClientState>();
  /** Every live SMTP connection, whichever smtp-server instance (plain, XCLIENT, pre-reload) owns it. */
  private readonly connections = new Set<GatewayConnection>();
  private closing = false;
  relayFailures = 0;
  /** AUTH attempts by outcome: ok, failed (backend 5xx), refused (auth_fail policy before the backend), tempfail. */
  readonly authCounts: Record<AuthResult, number> = { ok: 0, failed: 0, refused: 0, tempfail: 0 };
  /** Called with the backend's answer time for each relayed command (the admin metrics hook in here). */
  onRelayLatency: ((command: 'mail' | 'rcpt' | 'data', seconds: number) => void) | undefined;

  private timed<T>(command: 'mail' | 'rcpt' | 'data', p: Promise<T>): Promise<T> {
    const hook = this.onRelayLatency;
    if (!hook) return p;
    const t0 = process.hrtime.bigint();
    return p.finally(() => hook(command, Number(process.hrtime.bigint() - t0) / 1e9));
  }

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

  /** A socket or TLS error of one connection: logged at a level that says whose fault it is, then that connection goes. */
  private connectionError(conn: GatewayConnection, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    const meta = { cid: conn.id, client: conn.remoteAddress, code, err: err.message };
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
      allowInsecureAuth: s.auth.allow_plaintext,
      disableReverseLookup: true,
      logger: smtpServerLogger(this.deps.logger.child({ component: 'smtp' })) as unknown as SMTPServerOptions['logger'],
      onConnect: (session, cb) => void this.onConnect(session, cb),
      onAuth: (auth, session, cb) => void this.onAuth(auth, session, cb),
      onMailFrom: (address, session, cb) => void this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => void this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => void this.onData(stream, session, cb),
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

  async listen(addresses: readonly HostPort[]): Promise<void> {
    for (const a of addresses) {
      const server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(a.port, a.host, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
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
    return this.states.size;
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => {});
    // A client that reset before the connection was accepted has no address: nothing to serve.
    const peer = socket.remoteAddress === undefined ? undefined : normalizeAddress(socket.remoteAddress)?.address;
    if (peer === undefined) {
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
          const client = info.sourceAddress === undefined ? peer : (normalizeAddress(info.sourceAddress)?.address ?? '');
          this.connect(this.serverFor(client), socket, opts);
        },
        (err: Error) => {
          if (socket.destroyed) {
            this.deps.logger.debug({ peer, err: err.message }, 'client left before its PROXY header');
            return;
          }
          this.deps.logger.info({ peer, err: err.message }, 'bad PROXY header from a trusted peer');
          endOnce(socket, `554 5.5.4 Invalid PROXY header [${id}@${this.deps.config().server.hostname}]\r\n`);
        },
      );
      return;
    }
    // Anyone else sending a PROXY header is refused: it would otherwise spoof its address.
    const sniff = (chunk: Buffer): void => {
      if (!looksLikeProxyHeader(chunk)) return;
      this.deps.logger.info({ peer, cid: id }, 'PROXY header from an untrusted peer refused');
      endOnce(socket, `554 5.7.1 PROXY header not accepted from ${peer} [${id}@${this.deps.config().server.hostname}]\r\n`);
    };
    socket.prependOnceListener('data', sniff);
    this.connect(this.serverFor(peer), socket, { id });
  }

  /** The smtp-server instance for a client: the one that offers XCLIENT only to trusted peers. */
  private serverFor(client: string): SMTPServer {
    return this.xclientTrusted(client) ? this.xclient : this.plain;
  }

  /**
   * SMTPServer.connect() as the library does it, except for the greeting delay: the library waits
   * a fixed 100 ms before every greeting (its early-talker check), which caps a gateway's session
   * rate at concurrency / 0.1 s. auditgate makes it `server.greet_delay` (default 0).
   */
  private connect(target: SMTPServer, socket: net.Socket, opts: Record<string, unknown>): void {
    const s = this.deps.config().server;
    const limits = { maxTransactions: s.max_transactions, maxErrors: s.max_errors, maxJunkCommands: s.max_junk_commands };
    const conn = new GatewayConnection(target, socket, opts, this.heloHook, limits);
    const internals = target as unknown as { connections: Set<unknown>; _onClientConnect(data: unknown): void };
    internals.connections.add(conn);
    this.connections.add(conn);
    socket.once('close', () => this.connections.delete(conn));
    // The library leaves socket errors inside a transaction to its server's 'error' event, which
    // would crash the process: each one is logged and ends its own connection only.
    conn.on('error', (err: Error) => this.connectionError(conn, err));
    conn.on('connect', (data: unknown) => internals._onClientConnect(data));
    const delayMs = this.deps.config().server.greet_delay * 1000;
    conn._setListeners(() => {
      // One limit for the whole front, across the plain and XCLIENT servers and across reloads.
      const max = this.deps.config().server.max_clients;
      if (this.connections.size > max) {
        conn.send(421, `4.7.0 Too many connected clients, try again in a moment [${String(opts.id)}@${this.deps.config().server.hostname}]`, false);
        return;
      }
      if (delayMs > 0) setTimeout(() => conn.connectionReady(), delayMs).unref();
      else conn.connectionReady();
    });
  }

  // ---- hooks ------------------------------------------------------------------------------

  private state(session: SMTPServerSession): ClientState {
    let st = this.states.get(session.id);
    if (!st) {
      // '' when the address is not one we can count (an XCLIENT'd scoped address, say)
      const ip = normalizeAddress(session.remoteAddress)?.address ?? '';
      st = { cid: session.id, tag: `${session.id}@${this.deps.config().server.hostname}`, ip, rawAddress: session.remoteAddress, trusted: false, timers: new Set(), closed: false };
      this.states.set(session.id, st);
    }
    return st;
  }

  private ctx(st: ClientState, stage: Stage, session: SMTPServerSession, extra: Partial<EventContext> = {}): EventContext {
    const c: EventContext = { stage, ip: st.ip };
    if (session.hostNameAppearsAs) c.helo = session.hostNameAppearsAs;
    // smtp-server sets user to false after STARTTLS and XCLIENT: only a real identity counts
    if (session.user) c.auth_user = String(session.user);
    return Object.assign(c, extra);
  }

  /**
   * Runs a stage and turns the decision into a callback: refusal → error reply (and a
   * `reject` event), tarpit → delayed continue, accept/continue → continue.
   */
  private async runStage(st: ClientState, ctx: EventContext, cb: (err?: Error | null) => void, next: () => void): Promise<void> {
    if (this.deps.recorder.passes(ctx.stage, st.trusted)) {
      next();
      return;
    }
    const res: StageResult = await this.deps.recorder.stage(ctx, st.cid, { skipPolicies: st.trusted });
    if (st.closed) return;
    switch (res.verdict) {
      case 'tempfail':
      case 'reject':
        void this.rejectEvent(st, ctx);
        cb(refusal(res, res.verdict, ctx.stage, st.tag));
        return;
      case 'tarpit':
        this.later(st, res.fired?.policy.delayMs ?? 0, next);
        return;
      case 'accept':
        if (ctx.stage === 'connect') st.trusted = true;
        next();
        return;
      default:
        next();
    }
  }

  private async rejectEvent(st: ClientState, ctx: EventContext): Promise<void> {
    if (ctx.stage === 'reject' || this.deps.recorder.passes('reject')) return;
    try {
      await this.deps.recorder.stage({ ...ctx, stage: 'reject' }, st.cid);
    } catch {
      // the recorder reports its own failures
    }
  }

  private async onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): Promise<void> {
    const st = this.state(session);
    this.deps.sessions.opened(st.ip);
    await this.runStage(st, this.ctx(st, 'connect', session), cb, () => cb());
  }

  /**
   * AUTH PLAIN / LOGIN, checked by the backend. The attempt is counted as an auth_fail event
   * *before* the backend is asked, and the count undone if the password was right: so a client
   * over its limit is refused without a password being checked, even with many attempts in
   * flight at once (brute-force defence). A refusal is a 421 (tempfail, the connection closes)
   * or a 535 (reject); a tarpit delays the 535 of a failed attempt.
   */
  private async onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): Promise<void> {
    if (auth.method === 'XCLIENT') {
      // XCLIENT LOGIN= from a trusted peer: let it through unauthenticated, as smtp-server does
      cb(undefined);
      return;
    }
    const st = this.state(session);
    if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') {
      cb(smtpError(504, `5.5.4 Unrecognized authentication type [${st.tag}]`));
      return;
    }
    const user = auth.username ?? '';
    const ctx = this.ctx(st, 'auth_fail', session, { auth_user: user.toLowerCase() });
    const outcome = (result: AuthResult, extra: Record<string, unknown> = {}): void => {
      this.authCounts[result]++;
      this.deps.logger.info({ cid: st.cid, client: st.ip, user, method: auth.method, result, ...extra }, 'AUTH');
    };
    const counted = !this.deps.recorder.passes('auth_fail', st.trusted);
    const pre: StageResult = counted ? await this.deps.recorder.stage(ctx, st.cid, { skipPolicies: st.trusted }) : { verdict: 'continue', shadow: [] };
    const undo = (): void => {
      if (counted) void this.deps.recorder.undo(ctx);
    };
    if (st.closed) return; // the client left: its attempt stays counted, nothing was checked
    if (pre.verdict === 'tempfail' || pre.verdict === 'reject') {
      outcome('refused', { policy: pre.fired?.policy.name });
      void this.rejectEvent(st, ctx);
      cb(refusal(pre, pre.verdict, 'auth_fail', st.tag));
      return;
    }
    let res: RelayAuthResult;
    try {
      res = await this.deps.relay().authenticate({ clientAddress: st.ip }, user, auth.password ?? '');
    } catch (err) {
      undo();
      this.relayFailure(st, err);
      outcome('tempfail');
      cb(smtpError(454, `4.7.0 Temporary authentication failure, try again later [${st.tag}]`));
      return;
    }
    if (st.closed) {
      res.session?.close();
      if (res.reply.code < 500) undo();
      return;
    }
    if (res.reply.code === 235 && res.session) {
      undo();
      st.auth?.close(); // a new AUTH after STARTTLS or XCLIENT reset the identity
      st.auth = res.session;
      outcome('ok');
      cb(null, { user });
      return;
    }
    if (res.reply.code >= 500) {
      outcome('failed', { reply: res.reply.code });
      const fail = (): void => cb(smtpError(535, `5.7.8 Authentication credentials invalid [${st.tag}]`));
      if (pre.verdict === 'tarpit') this.later(st, pre.fired?.policy.delayMs ?? 0, fail);
      else fail();
      return;
    }
    undo();
    outcome('tempfail', { reply: res.reply.code });
    cb(backendError(res.reply, st.tag));
  }

  /** Runs `fn` after `ms` unless the client has left by then (tarpits). */
  private later(st: ClientState, ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      st.timers.delete(t);
      if (!st.closed) fn();
    }, ms);
    st.timers.add(t);
  }

  private async onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): Promise<void> {
    const st = this.state(session);
    if (st.tx) {
      // A new MAIL ends whatever transaction came before (RSET, or a client starting over):
      // free its backend connection now, whatever the policies say about this one.
      const old = st.tx;
      st.tx = undefined;
      void old.release().catch(() => {});
    }
    if (this.followXclient(st, session)) {
      // the forwarded client is new to us: its connect stage runs now (XCLIENT has no onConnect)
      await this.runStage(st, this.ctx(st, 'connect', session), cb, () => void this.mailStages(st, address, session, cb));
      return;
    }
    await this.mailStages(st, address, session, cb);
  }

  private async mailStages(st: ClientState, address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): Promise<void> {
    const [mail_from, mail_from_domain] = splitAddress(address.address);
    const extra: Partial<EventContext> = { mail_from, mail_from_domain };
    await this.runStage(st, this.ctx(st, 'mail', session, extra), cb, () => void this.openTransaction(st, address, session, cb));
  }

  /** HELO/EHLO (see GatewayConnection): the helo stage, after XCLIENT first the forwarded client's connect stage. */
  private readonly heloHook: HeloHook = {
    onHelo: (conn, proceed, refuse) => this.onHelo(conn.session, proceed, refuse),
  };

  private onHelo(session: SMTPServerSession, proceed: () => void, refuse: (err: SmtpError) => void): void {
    const st = this.state(session);
    const cb = (err?: Error | null): void => {
      if (err) refuse(err as SmtpError);
      else proceed();
    };
    const helo = (): void => void this.runStage(st, this.ctx(st, 'helo', session), cb, proceed);
    if (this.followXclient(st, session)) void this.runStage(st, this.ctx(st, 'connect', session), cb, helo);
    else helo();
  }

  /** XCLIENT changes the client address mid-connection: count the new client from then on. True when it changed. */
  private followXclient(st: ClientState, session: SMTPServerSession): boolean {
    if (session.remoteAddress === st.rawAddress) return false;
    st.rawAddress = session.remoteAddress;
    const ip = normalizeAddress(session.remoteAddress)?.address ?? '';
    if (ip === st.ip) return false;
    this.deps.sessions.closed(st.ip);
    st.ip = ip;
    st.trusted = false;
    this.deps.sessions.opened(ip);
    return true;
  }

  private async openTransaction(st: ClientState, address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): Promise<void> {
    try {
      const meta = { clientAddress: st.ip, heloName: session.hostNameAppearsAs || '' };
      if (st.auth && !session.user) {
        // STARTTLS or XCLIENT ended the identity: its backend connection goes with it
        st.auth.close();
        st.auth = undefined;
      }
      const tx = await (st.auth ? st.auth.begin(meta) : this.deps.relay().begin(meta));
      if (st.closed) {
        tx.abort();
        return;
      }
      st.tx = tx;
      const args = (address.args || {}) as Record<string, string | boolean>;
      const params: { size?: number; body?: '8BITMIME' | '7BIT'; smtputf8?: boolean } = {};
      if (args.SIZE) params.size = Number(args.SIZE);
      if (args.BODY === '8BITMIME' || args.BODY === '7BIT') params.body = args.BODY;
      if (args.SMTPUTF8) params.smtputf8 = true;
      const reply = await this.timed('mail', tx.mailFrom(address.address, params));
      if (reply.code >= 400) {
        st.tx = undefined;
        await tx.release().catch(() => {});
        void this.rejectEvent(st, this.ctx(st, 'mail', session));
        cb(backendError(reply, st.tag));
        return;
      }
      cb();
    } catch (err) {
      this.relayFailure(st, err);
      if (err instanceof RelayError && err.responseCode === 421) {
        // the authenticated backend session is gone: the client must connect and log in again
        cb(smtpError(421, `4.4.2 ${err.message} [${st.tag}]`));
        return;
      }
      cb(smtpError(451, `4.4.1 Backend unavailable, try again later [${st.tag}]`));
    }
  }

  private async onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): Promise<void> {
    const st = this.state(session);
    const max = this.deps.config().server.max_recipients;
    if (session.envelope.rcptTo.length >= max) {
      cb(smtpError(452, `4.5.3 Too many recipients (at most ${max} per message) [${st.tag}]`));
      return;
    }
    const [rcpt, rcpt_domain] = splitAddress(address.address);
    const [mail_from, mail_from_domain] = splitAddress(session.envelope.mailFrom ? session.envelope.mailFrom.address : '');
    const extra: Partial<EventContext> = { rcpt, rcpt_domain, mail_from, mail_from_domain };
    await this.runStage(st, this.ctx(st, 'rcpt', session, extra), cb, () => void this.relayRcpt(st, address, session, extra, cb));
  }

  private async relayRcpt(st: ClientState, address: SMTPServerAddress, session: SMTPServerSession, extra: Partial<EventContext>, cb: (err?: Error | null) => void): Promise<void> {
    const tx = st.tx;
    if (!tx) {
      cb(smtpError(451, `4.3.0 No backend transaction, send MAIL FROM again [${st.tag}]`));
      return;
    }
    try {
      const reply = await this.timed('rcpt', tx.rcptTo(address.address));
      if (reply.code < 400) {
        cb();
        return;
      }
      if (reply.code >= 500) {
        // The backend does not know this recipient: the event directory-harvest policies count.
        const res = await this.deps.recorder.stage(this.ctx(st, 'rcpt_rejected', session, extra), st.cid, { skipPolicies: st.trusted });
        if (res.verdict === 'tempfail' || res.verdict === 'reject') {
          void this.rejectEvent(st, this.ctx(st, 'rcpt', session, extra));
          cb(refusal(res, res.verdict, 'rcpt', st.tag));
          return;
        }
      }
      void this.rejectEvent(st, this.ctx(st, 'rcpt', session, extra));
      cb(backendError(reply, st.tag));
    } catch (err) {
      this.relayFailure(st, err);
      st.tx = undefined;
      void tx.release().catch(() => {});
      cb(smtpError(451, `4.4.1 Backend unavailable, try again later [${st.tag}]`));
    }
  }

  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): Promise<void> {
    const st = this.state(session);
    await this.runStage(st, this.ctx(st, 'data', session), cb, () => void this.relayData(st, stream, session, cb));
  }

  private async relayData(st: ClientState, stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): Promise<void> {
    const tx = st.tx;
    if (!tx) {
      stream.resume();
      cb(smtpError(451, `4.3.0 No backend transaction [${st.tag}]`));
      return;
    }
    // st.tx stays set while the message goes out: a client that vanishes before the backend's
    // final reply has its transaction aborted (onClose), so a message it never saw a 250 for
    // is not delivered where that can still be stopped — it will send it again.
    try {
      const reply = await this.timed('data', tx.data(stream, this.received(st, session)));
      st.tx = undefined;
      void tx.release().catch(() => {});
      if (reply.code >= 200 && reply.code < 300) {
        void this.deps.recorder.monitor('receptions', st.ip);
        cb(null, `${reply.enhanced ?? '2.0.0'} ${reply.message || 'Ok'} [${st.tag}]`);
        return;
      }
      void this.rejectEvent(st, this.ctx(st, 'data', session));
      cb(backendError(reply, st.tag));
    } catch (err) {
      st.tx = undefined;
      tx.abort();
      this.relayFailure(st, err);
      cb(smtpError(451, `4.4.1 Backend failed during DATA, message not accepted, try again later [${st.tag}]`));
    }
  }

  private received(st: ClientState, session: SMTPServerSession): string {
    const helo = session.hostNameAppearsAs || 'unknown';
    const proto = session.transmissionType || 'ESMTP';
    const rcpts = session.envelope.rcptTo;
    const forPart = rcpts.length === 1 ? `\r\n\tfor <${rcpts[0]!.address}>` : '';
    const host = this.deps.config().server.hostname;
    const addr = st.ip === '' ? 'unknown' : st.ip.includes(':') ? `IPv6:${st.ip}` : st.ip;
    return `Received: from ${helo} ([${addr}])\r\n\tby ${host} (auditgate) with ${proto} id ${st.cid}${forPart};\r\n\t${new Date().toUTCString().replace('GMT', '+0000')}\r\n`;
  }

  private relayFailure(st: ClientState, err: unknown): void {
    if (st.closed || err instanceof MessageAbortedError) {
      // the client vanished (mid-message, or before the backend answered): not the backend's fault
      this.deps.logger.debug({ cid: st.cid, client: st.ip }, 'client left during the relay');
      return;
    }
    this.relayFailures++;
    this.deps.logger.warn({ cid: st.cid, client: st.ip, err: err instanceof Error ? err.message : String(err) }, 'relay failed: client told to retry');
  }

  private onClose(session: SMTPServerSession): void {
    const st = this.states.get(session.id);
    if (!st) return;
    st.closed = true;
    for (const t of st.timers) clearTimeout(t);
    st.tx?.abort();
    st.auth?.close();
    this.deps.sessions.closed(st.ip);
    this.states.delete(session.id);
  }

  /** Stops accepting, lets open sessions finish (up to drainMs), then closes the rest. */
  async close(drainMs = 10_000): Promise<void> {
    this.closing = true;
    await Promise.all(this.listeners.map((l) => new Promise<void>((r) => l.close(() => r()))));
    const deadline = Date.now() + drainMs;
    while (this.states.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of this.connections) (c as unknown as { close(): void }).close();
    // Whoever is still connected has had its 421; their backend transactions go now, and a
    // client that never closes its side is cut off shortly after.
    for (const st of this.states.values()) st.tx?.abort();
    if (this.connections.size > 0) {
      await new Promise((r) => setTimeout(r, 200));
      for (const c of this.connections) (c as unknown as { _socket?: net.Socket })._socket?.destroy();
    }
  }
}

/** Random bytes for connection ids, fetched in batches rather than one call per connection. */
let idPool = Buffer.alloc(0);
let idOffset = 0;

/** 12 hex digits of randomness: the connection id in logs and in every reply that names one. */
function connectionId(): string {
  if (idOffset + 6 > idPool.length) {
    idPool = randomBytes(6 * 512);
    idOffset = 0;
  }
  idOffset += 6;
  return idPool.toString('hex', idOffset - 6, idOffset);
}

/**
 * smtp-server logs every command and reply at info (which the adapter demotes to debug),
 * through nodemailer's wrapper that copies an object per line even when nothing is written.
 * When debug is off those levels become no-ops on the instance; warn and error still log.
 */
function quietTranscript(server: SMTPServer, logger: Logger): SMTPServer {
  if (logger.isLevelEnabled('debug')) return server;
  const internal = server as unknown as { logger: Record<string, (...args: unknown[]) => unknown> };
  const none = (): boolean => false;
  internal.logger.info = none;
  internal.logger.debug = none;
  internal.logger.trace = none;
  return server;
}

/** Network errors of a client going away, and TLS handshakes a client broke: not the gateway's faults. */
const CLIENT_LEFT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'ERR_STREAM_WRITE_AFTER_END', 'ERR_STREAM_DESTROYED']);

function clientFault(err: Error): 'left' | 'tls' | undefined {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (CLIENT_LEFT_CODES.has(code)) return 'left';
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /SSL routines|TLS/i.test(err.message)) return 'tls';
  return undefined;
}

/** Ends a socket with a last line, once, and destroys it if the client does not close its side. */
function endOnce(socket: net.Socket, line: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(line);
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** The reply for a refusal: the store-failure reply when the store failed, else the policy's. */
function refusal(res: StageResult, kind: 'tempfail' | 'reject', stage: Stage, tag: string): Error {
  return res.storeFailure ? refusalReply('tempfail', stage, tag, STORE_FAILURE_REPLY) : refusalReply(kind, stage, tag, res.fired?.policy.reply, res.retryAfter);
}

/** Lower-cased address and its domain ('' when there is none, which templates treat as missing). */
function splitAddress(address: string): [string, string] {
  const a = address.toLowerCase();
  const at = a.lastIndexOf('@');
  return [a, at > 0 ? a.slice(at + 1) : ''];
}

function backendError(reply: SmtpReply, tag: string): Error {
  const enhanced = reply.enhanced ? `${reply.enhanced} ` : '';
  return smtpError(reply.code, `${enhanced}${reply.message} [${tag}]`);
}
