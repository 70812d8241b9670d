/**
 * The admin HTTP listener: Momentum `inbound_audit` console verbs as JSON endpoints, plus
 * Prometheus `/metrics` and an open `/healthz`. Plain node:http, loopback by default, a bearer
 * token when `admin.token` is set. Every request first passes request-guard.ts (Host, cross-site
 * Origin / Sec-Fetch-Site, JSON body type): the browser on the gateway host is not a way in.
 * Request bodies are bounded; every handler does at most one store round trip (or one top()
 * call), so nothing here can stall the SMTP path. Bad input is a 4xx JSON `{error, code}`;
 * nothing a client sends can crash the gateway.
 */
import http from 'node:http';
import type net from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HostPort } from '../config/types.js';
import { normalizeCidr } from '../config/values.js';
import { AuditgateError } from '../errors.js';
import { listenOn } from '../listen.js';
import { isDistinct, type AuditSeries } from '../series/index.js';
import type { CountQuery } from '../store/types.js';
import { AdminHttpError, bad, readJsonBody } from './http.js';
import { checkKey, parseIntParam, parseWindows } from './params.js';
import { addBan, bansOf, liftBan, listBans } from './bans.js';
import { createMetrics, type GatewayMetrics } from './metrics.js';
import { guardRequest } from './request-guard.js';
import type { AdminView } from './view.js';
import { HANDLED, RawBody, type RequestContext, type Route } from './route.js';
import { AdminConsole } from './console.js';
import type { SeriesRow } from './answers.js';

const MAX_TOP_LIMIT = 1000;

function statusFor(err: AuditgateError): number {
  switch (err.code) {
    case 'AG_SERIES_UNKNOWN':
      return 404;
    case 'AG_KEY_INVALID':
    case 'AG_VALUE_INVALID':
    case 'AG_WINDOW_RANGE':
    case 'AG_SERIES_DEFINITION':
      return 400;
    case 'AG_STORE':
      return 503;
    case 'AG_BAN':
      return 409;
    case 'AG_BAN_NOT_FOUND':
      return 404;
    default:
      return 500;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class AdminServer {
  private server: http.Server | undefined;
  private readonly metrics: GatewayMetrics;
  private readonly routes: Route[];
  private readonly sockets = new Set<net.Socket>();
  /** The web console: its page, live decisions, firing rates. */
  readonly console: AdminConsole;

  constructor(
    private readonly gateway: AdminView,
    /** Where to listen (admin.listen). */
    private readonly at: HostPort,
  ) {
    this.metrics = createMetrics(gateway);
    this.console = new AdminConsole(gateway, (req) => this.authorized(req));
    this.routes = [
      { method: 'GET', parts: ['healthz'], auth: false, handler: () => this.healthz() },
      { method: 'GET', parts: ['metrics'], auth: true, handler: async () => new RawBody(this.metrics.contentType, await this.metrics.render()) },
      { method: 'GET', parts: ['series'], auth: true, handler: () => this.listSeries() },
      { method: 'GET', parts: ['show', 'ip', ':ip'], auth: true, handler: (c) => this.showIp(c.params.ip!) },
      { method: 'GET', parts: ['series', ':name', 'count'], auth: true, handler: (c) => this.count(c) },
      { method: 'POST', parts: ['series', ':name', 'add'], auth: true, handler: (c) => this.add(c) },
      { method: 'DELETE', parts: ['series', ':name', 'items'], auth: true, handler: (c) => this.remove(c) },
      { method: 'GET', parts: ['series', ':name', 'top'], auth: true, handler: (c) => this.top(c) },
      { method: 'GET', parts: ['sessions'], auth: true, handler: (c) => this.sessionsTop(c) },
      { method: 'GET', parts: ['decisions'], auth: true, handler: (c) => this.decisions(c) },
      { method: 'GET', parts: ['bans'], auth: true, handler: (c) => Promise.resolve(listBans(bansOf(gateway), c.query, gateway.clock.now())) },
      { method: 'POST', parts: ['bans'], auth: true, handler: (c) => addBan(bansOf(gateway), c.req, c.res, gateway.clock.now()) },
      { method: 'DELETE', parts: ['bans'], auth: true, handler: (c) => Promise.resolve(liftBan(bansOf(gateway), c.query, gateway.clock.now())) },
      ...this.console.routes(),
    ];
  }

  async listen(): Promise<void> {
    const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
      void this.handle(req, res);
    });
    server.on('connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
    server.keepAliveTimeout = 5_000;
    await listenOn(server, this.at, 'admin.listen');
    server.on('error', (err) => this.gateway.logger.error({ err }, 'admin listener error'));
    this.server = server;
  }

  address(): HostPort | undefined {
    const a = this.server?.address();
    if (!a || typeof a === 'string') return undefined;
    return { host: a.address, port: a.port };
  }

  /** Open client connections (keep-alive ones included); tests wait for resets to land. */
  openConnections(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.console.close();
    this.metrics.close();
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    const t = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, 1000);
    await closed;
    clearTimeout(t);
  }

  // ---- dispatch -------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      // Host, cross-site and body type first: a refused request reaches no route and no body read.
      const refusal = guardRequest(req.headers, { listenHost: this.at.host, hosts: this.gateway.config.admin.hosts });
      if (refusal) {
        res.setHeader('Connection', 'close');
        throw new AdminHttpError(refusal.status, refusal.code, refusal.message);
      }
      const url = new URL(req.url ?? '/', 'http://admin.invalid');
      let segments: string[];
      try {
        segments = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
      } catch {
        throw bad(`the path "${url.pathname}" is not valid percent-encoding`);
      }
      const { route, params, methodMismatch } = this.match(req.method ?? 'GET', segments);
      if (!route) {
        if (methodMismatch.length) {
          res.setHeader('Allow', methodMismatch.join(', '));
          throw new AdminHttpError(405, 'AG_ADMIN_METHOD', `${req.method} is not allowed on ${url.pathname} (use ${methodMismatch.join(', ')})`);
        }
        throw new AdminHttpError(404, 'AG_ADMIN_NOT_FOUND', `no admin endpoint ${req.method} ${url.pathname}`);
      }
      if (route.auth) this.authorize(req, res);
      if (route.auth) await this.gateway.refresh?.();
      const result = await route.handler({ req, res, params, query: url.searchParams });
      if (result === HANDLED) return;
      if (result instanceof RawBody) this.send(res, 200, result.body, result.contentType, result.headers);
      else this.sendJson(res, 200, result);
    } catch (err) {
      this.fail(req, res, err);
    }
  }

  private match(method: string, segments: string[]): { route?: Route; params: Record<string, string>; methodMismatch: string[] } {
    const methodMismatch: string[] = [];
    for (const r of this.routes) {
      if (r.parts.length !== segments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < r.parts.length && ok; i++) {
        const p = r.parts[i]!;
        const s = segments[i]!;
        if (p.startsWith(':')) params[p.slice(1)] = s;
        else ok = p === s;
      }
      if (!ok) continue;
      // /series/top/... etc. never collide: literal routes are listed first.
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { route: r, params, methodMismatch };
      methodMismatch.push(r.method);
    }
    return { params: {}, methodMismatch };
  }

  /** True when the request may use the API (no token configured, or the right bearer token). */
  private authorized(req: http.IncomingMessage): boolean {
    const token = this.gateway.config.admin.token;
    if (token === undefined) return true;
    const m = /^Bearer\s+(.+)$/i.exec((req.headers.authorization ?? '').trim());
    return m !== null && timingSafeEqual(digest(m[1]!.trim()), digest(token));
  }

  private authorize(req: http.IncomingMessage, res: http.ServerResponse): void {
    const token = this.gateway.config.admin.token;
    if (token === undefined) return;
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (!m) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="auditgate"');
      throw new AdminHttpError(401, 'AG_ADMIN_UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <admin.token>)');
    }
    if (!timingSafeEqual(digest(m[1]!.trim()), digest(token))) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="auditgate", error="invalid_token"');
      throw new AdminHttpError(401, 'AG_ADMIN_UNAUTHORIZED', 'the bearer token is wrong');
    }
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    let status = 500;
    let code = 'AG_ADMIN_INTERNAL';
    let message = 'internal error';
    if (err instanceof AdminHttpError) {
      ({ status, code, message } = err);
    } else if (err instanceof AuditgateError) {
      status = statusFor(err);
      code = err.code;
      message = err.message;
    } else {
      this.gateway.logger.error({ err, method: req.method, url: req.url }, 'admin request failed');
      message = err instanceof Error ? `internal error: ${err.message}` : 'internal error';
    }
    if (status >= 500 && !(err instanceof AdminHttpError)) this.gateway.logger.warn({ code, method: req.method, url: req.url, err: message }, 'admin request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.sendJson(res, status, { error: message, code });
  }

  private sendJson(res: http.ServerResponse, status: number, body: unknown): void {
    this.send(res, status, `${JSON.stringify(body, null, 2)}\n`, 'application/json; charset=utf-8');
  }

  private send(res: http.ServerResponse, status: number, body: string, contentType: string, headers: Readonly<Record<string, string>> = {}): void {
    if (res.writableEnded || res.destroyed) return;
    res.statusCode = status;
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.setHeader('Content-Type', contentType);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  // ---- handlers -------------------------------------------------------------------------

  private healthz(): Promise<unknown> {
    const g = this.gateway;
    const st = g.store.status();
    return Promise.resolve({
      status: 'ok',
      uptime: Math.round((g.clock.now() - g.startedAt) / 1000),
      sessions: g.front.openSessions(),
      store: { kind: st.kind, state: st.state },
    });
  }

  private replicateOf(name: string): string {
    return this.gateway.config.series[name]?.replicate ?? 'none';
  }

  private isMonitor(name: string): boolean {
    return this.gateway.config.series[name] === undefined;
  }

  private listSeries(): Promise<unknown> {
    const series = this.gateway.registry.list().map((s): SeriesRow => ({
      name: s.name,
      type: s.type,
      distinct: isDistinct(s),
      interval: s.interval,
      windows: s.windows,
      keys: s.size(),
      memory_bytes: s.memoryBytes(),
      replicate: this.replicateOf(s.name),
      monitor: this.isMonitor(s.name),
    }));
    const st = this.gateway.store.status();
    return Promise.resolve({ series, store: st });
  }

  private async showIp(ip: string): Promise<unknown> {
    const n = normalizeCidr(ip);
    if (n === null) throw bad(`"${ip}" is not an IP address or CIDR prefix`, 'AG_KEY_INVALID');
    const family = n.includes(':') ? 6 : 4;
    const wanted = family === 4 ? 'cidr' : 'cidr_ipv6';
    const list = this.gateway.registry.list().filter((s) => s.type === wanted);
    // per window, and for a distinct series the distinct values over all windows (not the sum)
    const queries: CountQuery[] = [];
    for (const s of list) {
      for (let v = 0; v < s.windows; v++) queries.push({ series: s.name, key: ip, startv: v, endv: v });
      if (isDistinct(s)) queries.push({ series: s.name, key: ip, startv: 0, endv: s.windows - 1 });
    }
    const counts = queries.length ? await this.gateway.store.countMany(queries) : [];
    let i = 0;
    const series = list.map((s) => {
      const windows = counts.slice(i, i + s.windows);
      i += s.windows;
      const distinct = isDistinct(s);
      return {
        name: s.name,
        type: s.type,
        ...(distinct ? { distinct } : {}),
        interval: s.interval,
        monitor: this.isMonitor(s.name),
        total: distinct ? counts[i++]! : windows.reduce((a, b) => a + b, 0),
        windows,
      };
    });
    return { ip, key: n, family, sessions: this.gateway.sessions.count(ip), series, ...this.console.aboutClient(n) };
  }

  private series(c: RequestContext): AuditSeries {
    return this.gateway.registry.get(c.params.name!);
  }

  private async count(c: RequestContext): Promise<unknown> {
    const s = this.series(c);
    const key = checkKey(s, c.query.get('key'));
    const [startv, endv] = parseWindows(c.query.get('windows'), s);
    const count = await this.gateway.store.count(s.name, key, startv, endv);
    return { series: s.name, key, windows: [startv, endv], count };
  }

  private async add(c: RequestContext): Promise<unknown> {
    const s = this.series(c);
    const body = await readJsonBody(c.req, c.res);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object {"key": "...", "count": N}', 'AG_ADMIN_BAD_JSON');
    const o = body as Record<string, unknown>;
    if (typeof o.key !== 'string') throw bad('"key" must be a string (an address, or a string key for a string series)', 'AG_KEY_INVALID');
    const key = checkKey(s, o.key, { address: true });
    if (isDistinct(s) || o.value !== undefined) return this.addValue(s, key, o);
    const count = o.count === undefined ? 1 : o.count;
    if (typeof count !== 'number' || !Number.isSafeInteger(count)) throw bad(`"count" must be an integer (negative subtracts), got ${JSON.stringify(count)}`);
    await this.gateway.store.add(s.name, key, count);
    const now = await this.gateway.store.count(s.name, key, 0, 0);
    return { series: s.name, key, added: count, count: now };
  }

  /** A distinct series' add: {"key", "value"}; the answer has its distinct values in window 0. */
  private async addValue(s: AuditSeries, key: string, o: Record<string, unknown>): Promise<unknown> {
    if (o.count !== undefined) throw bad(`series "${s.name}" counts distinct values: send {"key": "...", "value": "..."}, not a count`, 'AG_VALUE_INVALID');
    if (typeof o.value !== 'string') throw bad(`"value" must be a string (the value whose distinct occurrences series "${s.name}" counts)`, 'AG_VALUE_INVALID');
    await this.gateway.store.addMany([{ series: s.name, key, count: 1, value: o.value }]);
    const now = await this.gateway.store.count(s.name, key, 0, 0);
    return { series: s.name, key, value: o.value, count: now };
  }

  private async remove(c: RequestContext): Promise<unknown> {
    const s = this.series(c);
    const key = checkKey(s, c.query.get('key'));
    const removed = await this.gateway.store.removeItem(s.name, key);
    return { series: s.name, key, removed };
  }

  private async top(c: RequestContext): Promise<unknown> {
    const s = this.series(c);
    const full = s.type === 'cidr' ? 32 : s.type === 'cidr_ipv6' ? 128 : undefined;
    const mask = full === undefined ? undefined : parseIntParam(c.query.get('mask'), 'mask', 0, full, undefined);
    const limit = parseIntParam(c.query.get('limit'), 'limit', 1, MAX_TOP_LIMIT, 10)!;
    const [startv, endv] = parseWindows(c.query.get('windows'), s);
    const opts: { mask?: number; startv: number; endv: number; limit: number } = { startv, endv, limit };
    if (mask !== undefined) opts.mask = mask;
    const top = await this.gateway.store.top(s.name, opts);
    // per_window=1 (the console's bars): each entry counted per window, in one more round trip.
    if (c.query.get('per_window') === '1' && top.length > 0) {
      const queries = top.flatMap((t) => Array.from({ length: endv - startv + 1 }, (_, i) => ({ series: s.name, key: t.key, startv: startv + i, endv: startv + i })));
      const counts = await this.gateway.store.countMany(queries);
      const per = endv - startv + 1;
      const withWindows = top.map((t, j) => ({ ...t, windows: counts.slice(j * per, (j + 1) * per) }));
      return { series: s.name, mask: mask ?? null, windows: [startv, endv], limit, top: withWindows };
    }
    return { series: s.name, mask: mask ?? null, windows: [startv, endv], limit, top };
  }

  private sessionsTop(c: RequestContext): Promise<unknown> {
    const familyText = c.query.get('family');
    if (familyText !== null && familyText !== '4' && familyText !== '6') throw bad(`family "${familyText}" must be 4 or 6`);
    const family: 4 | 6 = familyText === '6' ? 6 : 4;
    const mask = parseIntParam(c.query.get('mask'), 'mask', 0, family === 4 ? 32 : 128, family === 4 ? 24 : 64)!;
    const limit = parseIntParam(c.query.get('limit'), 'limit', 1, MAX_TOP_LIMIT, 10)!;
    const top = this.gateway.sessions.top(mask, family, limit);
    return Promise.resolve({ total: this.gateway.sessions.total(), open: this.gateway.front.openSessions(), family, mask, limit, top });
  }

  private decisions(c: RequestContext): Promise<unknown> {
    const limit = parseIntParam(c.query.get('limit'), 'limit', 1, 200, 50)!;
    const counts = [...this.gateway.recorder.decisionCounts].map(([k, count]) => {
      const [policy, action, mode] = k.split('\t');
      return { policy, action, mode, count };
    });
    return Promise.resolve({ decisions: this.gateway.recorder.recentFirings(limit), counts });
  }
}
