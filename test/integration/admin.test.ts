/**
 * The admin HTTP listener and the `auditgate series` CLI against a running gateway: port 0,
 * a real backend, sessions with PROXY headers so series, monitors, sessions and decisions hold
 * something to show.
 */
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { seriesCommand, type CliIo } from '../../src/cli/series.js';
import { proxyV1, sendMail, SmtpTestClient, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

const T0 = 1_800_000_000_000;
const TOKEN = 's3cret-admin-token';
const MON = 'connections:300,6';

const BODY = `
monitors: ["300,6"]
series:
  conn: { type: cidr, interval: 60, windows: 4 }
  conn6: { type: cidr_ipv6, interval: 60, windows: 4 }
  senders: { type: string, interval: 60, windows: 4 }
record:
  - { on: connect, series: [conn, conn6] }
  - { on: mail, series: senders, key: "{mail_from_domain}" }
policies:
  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 3], above: 2, action: tempfail }
  - { name: flood, on: mail, series: senders, key: "{mail_from_domain}", windows: [0, 0], above: 1, action: reject, mode: shadow }
`;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  text: string;
  headers: Headers;
}

describe('admin API and series CLI', () => {
  let backend: Backend;
  let gw: TestGateway;
  let base: string;
  let held: SmtpTestClient;
  const clock = new ManualClock(T0);

  async function call(method: string, p: string, opts: { token?: string | null; body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const token = opts.token === undefined ? TOKEN : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const init: RequestInit = { method, headers };
    if (opts.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      init.body = opts.body;
    }
    const res = await fetch(`${base}${p}`, init);
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* metrics text */
    }
    return { status: res.status, body, text, headers: res.headers };
  }

  async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), env };
    const code = await seriesCommand(args, io);
    return { code, out, err };
  }
  const admin = (): string[] => ['--admin', base, '--token', TOKEN];

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startTestGateway({
      relay: `smtp://127.0.0.1:${backend.port}`,
      body: BODY,
      clock,
      admin: `{ listen: "127.0.0.1:0", token: ${TOKEN} }`,
    });
    const a = gw.gateway.adminAddress()!;
    base = `http://127.0.0.1:${a.port}`;
    // 192.0.2.7 twice, 192.0.2.8 once, 2001:db8::1 once: all relayed.
    for (const ip of ['192.0.2.7', '192.0.2.7', '192.0.2.8', '2001:db8::1']) {
      const r = await sendMail(gw.port, { preface: proxyV1(ip) });
      expect(r.map((x) => x.code)).toEqual([220, 250, 250, 250, 250, 221]);
    }
    // 198.51.100.9: the third connection fires per-ip (enforce).
    for (let i = 0; i < 3; i++) {
      const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1('198.51.100.9') });
      expect(c.greeting.code).toBe(i < 2 ? 220 : 421);
      c.close();
    }
    // One session stays open for the sessions endpoint and gauge.
    held = await SmtpTestClient.connect(gw.port, { preface: proxyV1('203.0.113.5') });
    expect(held.greeting.code).toBe(220);
    const deadline = Date.now() + 5000;
    while (gw.gateway.front.openSessions() !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  });
  afterAll(async () => {
    held?.close();
    await gw?.close();
    await backend?.close();
  });

  describe('HTTP endpoints', () => {
    it('GET /healthz needs no token', async () => {
      const r = await call('GET', '/healthz', { token: null });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ status: 'ok', store: { state: 'ok' } });
    });

    it('refuses every other endpoint without the token or with a wrong one', async () => {
      for (const p of ['/series', '/metrics', '/sessions', '/decisions', '/show/ip/192.0.2.7', '/series/conn/count?key=192.0.2.7']) {
        const none = await call('GET', p, { token: null });
        expect(none.status, p).toBe(401);
        expect(none.body).toMatchObject({ code: 'AG_ADMIN_UNAUTHORIZED' });
        expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
        const wrong = await call('GET', p, { token: 'nope' });
        expect(wrong.status, p).toBe(401);
        expect(wrong.body.error).toMatch(/wrong/);
      }
      const basic = await call('GET', '/series', { token: null, headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
      expect(basic.status).toBe(401);
      const post = await call('POST', '/series/conn/add', { token: null, body: '{"key":"192.0.2.99"}' });
      expect(post.status).toBe(401);
      expect((await call('GET', '/series/conn/count?key=192.0.2.99')).body.count).toBe(0);
    });

    it('GET /series lists series and monitors with keys, memory and replicate', async () => {
      const r = await call('GET', '/series');
      expect(r.status).toBe(200);
      const list = r.body.series as Array<Record<string, unknown>>;
      const conn = list.find((s) => s.name === 'conn');
      expect(conn).toMatchObject({ type: 'cidr', interval: 60, windows: 4, keys: 4, replicate: 'none', monitor: false });
      expect(conn!.memory_bytes).toBeGreaterThan(0);
      expect(list.find((s) => s.name === 'senders')).toMatchObject({ type: 'string', keys: 1 });
      expect(list.find((s) => s.name === MON)).toMatchObject({ type: 'cidr', interval: 300, windows: 6, monitor: true });
      expect(list.find((s) => s.name === 'connections6:300,6')).toMatchObject({ type: 'cidr_ipv6', keys: 1 });
    });

    it('GET /series/:name/count counts an address or CIDR over a window range', async () => {
      expect((await call('GET', '/series/conn/count?key=192.0.2.0/24&windows=0-3')).body).toEqual({ series: 'conn', key: '192.0.2.0/24', windows: [0, 3], count: 3 });
      expect((await call('GET', '/series/conn/count?key=192.0.2.7')).body).toMatchObject({ windows: [0, 3], count: 2 });
      // series names with ":" and "," — encoded or not
      expect((await call('GET', `/series/${encodeURIComponent(MON)}/count?key=198.51.100.9&windows=0-5`)).body).toMatchObject({ series: MON, count: 3 });
      expect((await call('GET', `/series/${MON}/count?key=198.51.100.0/24&windows=0`)).body).toMatchObject({ count: 3 });
      expect((await call('GET', '/series/conn6/count?key=2001:db8::/32')).body).toMatchObject({ count: 1 });
      expect((await call('GET', '/series/senders/count?key=example.org')).body).toMatchObject({ count: 4 });
      // the window moves on: counts are in window 1 now, not 0
      clock.advance(60_000);
      expect((await call('GET', '/series/conn/count?key=192.0.2.0/24&windows=0-0')).body).toMatchObject({ count: 0 });
      expect((await call('GET', '/series/conn/count?key=192.0.2.0/24&windows=1-3')).body).toMatchObject({ count: 3 });
    });

    it('GET /show/ip/:ip shows every cidr series and monitor for a client, per window', async () => {
      const r = await call('GET', '/show/ip/192.0.2.7');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ ip: '192.0.2.7', family: 4, sessions: 0 });
      const series = r.body.series as Array<{ name: string; windows: number[]; total: number; monitor: boolean }>;
      expect(series.map((s) => s.name).sort()).toEqual(['conn', 'connections:300,6', 'receptions:300,6', 'rejections:300,6']);
      expect(series.find((s) => s.name === 'conn')).toMatchObject({ windows: [0, 2, 0, 0], total: 2, monitor: false });
      expect(series.find((s) => s.name === MON)).toMatchObject({ windows: [2, 0, 0, 0, 0, 0], total: 2, monitor: true });
      const v6 = await call('GET', `/show/ip/${encodeURIComponent('2001:db8::1')}`);
      expect((v6.body.series as Array<{ name: string }>).map((s) => s.name).sort()).toEqual(['conn6', 'connections6:300,6', 'receptions6:300,6', 'rejections6:300,6']);
      expect((await call('GET', '/show/ip/203.0.113.5')).body.sessions).toBe(1);
    });

    it('GET /series/:name/top groups by mask over windows', async () => {
      const r = await call('GET', '/series/conn/top?mask=24&windows=0-3&limit=10');
      expect(r.body).toMatchObject({ series: 'conn', mask: 24, windows: [0, 3], limit: 10 });
      expect(r.body.top).toEqual([
        { key: '192.0.2.0/24', count: 3 },
        { key: '198.51.100.0/24', count: 3 },
        { key: '203.0.113.0/24', count: 1 },
      ]);
      const one = await call('GET', '/series/conn/top?limit=1');
      expect(one.body.top).toHaveLength(1);
      expect((await call('GET', '/series/senders/top')).body.top).toEqual([{ key: 'example.org', count: 4 }]);
    });

    it('POST /series/:name/add adds and subtracts; DELETE removes items', async () => {
      let r = await call('POST', '/series/conn/add', { body: JSON.stringify({ key: '192.0.2.200', count: 5 }) });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ series: 'conn', key: '192.0.2.200', added: 5, count: 5 });
      r = await call('POST', '/series/conn/add', { body: JSON.stringify({ key: '192.0.2.200', count: -2 }) });
      expect(r.body).toMatchObject({ added: -2, count: 3 });
      r = await call('POST', `/series/${encodeURIComponent(MON)}/add`, { body: JSON.stringify({ key: '192.0.2.200' }) });
      expect(r.body).toMatchObject({ series: MON, added: 1, count: 1 });
      expect((await call('GET', '/series/conn/count?key=192.0.2.0/24')).body.count).toBe(6);
      r = await call('DELETE', '/series/conn/items?key=192.0.2.200');
      expect(r.body).toEqual({ series: 'conn', key: '192.0.2.200', removed: 1 });
      r = await call('DELETE', '/series/conn/items?key=192.0.2.200');
      expect(r.body.removed).toBe(0);
      expect((await call('GET', '/series/conn/count?key=192.0.2.0/24')).body.count).toBe(3);
      // delete a whole prefix (delete_ip on a CIDR) in a string-free way, then put it back
      await call('POST', '/series/conn6/add', { body: JSON.stringify({ key: '2001:db8::99', count: 2 }) });
      r = await call('DELETE', `/series/conn6/items?key=${encodeURIComponent('2001:db8::/64')}`);
      expect(r.body.removed).toBe(2);
    });

    it('GET /sessions shows open sessions per prefix and the total', async () => {
      const r = await call('GET', '/sessions?mask=24&family=4&limit=10');
      expect(r.body).toMatchObject({ total: 1, open: 1, family: 4, mask: 24 });
      expect(r.body.top).toEqual([{ key: '203.0.113.0/24', count: 1 }]);
      expect((await call('GET', '/sessions?family=6')).body).toMatchObject({ mask: 64, top: [] });
    });

    it('GET /decisions lists recent firings, newest first, with counts', async () => {
      const r = await call('GET', '/decisions?limit=50');
      const d = r.body.decisions as Array<Record<string, unknown>>;
      expect(d[0]).toMatchObject({ policy: 'per-ip', action: 'tempfail', mode: 'enforce', client: '198.51.100.9', stage: 'connect', count: 3, above: 2 });
      expect(d.filter((x) => x.policy === 'flood' && x.mode === 'shadow')).toHaveLength(3);
      expect(r.body.counts).toContainEqual({ policy: 'per-ip', action: 'tempfail', mode: 'enforce', count: 1 });
      expect(((await call('GET', '/decisions?limit=1')).body.decisions as unknown[]).length).toBe(1);
    });

    it('GET /metrics is Prometheus text with decisions, sessions, series keys and store state', async () => {
      const r = await call('GET', '/metrics');
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(r.text).toContain('# TYPE auditgate_decisions_total counter');
      expect(r.text).toContain('auditgate_decisions_total{policy="per-ip",action="tempfail",mode="enforce"} 1');
      expect(r.text).toContain('auditgate_decisions_total{policy="flood",action="reject",mode="shadow"} 3');
      expect(r.text).toMatch(/^auditgate_sessions_open 1$/m);
      expect(r.text).toMatch(/^auditgate_series_keys\{series="conn",type="cidr"\} \d+$/m);
      expect(r.text).toMatch(/^auditgate_series_keys\{series="connections:300,6",type="cidr"\} \d+$/m);
      expect(r.text).toMatch(/^auditgate_store_fallback 0$/m);
      expect(r.text).toMatch(/^auditgate_store_errors_total 0$/m);
      expect(r.text).toMatch(/^auditgate_relay_failures_total 0$/m);
      expect(r.text).toMatch(/^auditgate_relay_messages_total 4$/m);
      expect(r.text).toMatch(/^auditgate_relay_latency_seconds_count\{command="data"\} 4$/m);
      expect(r.text).toMatch(/^auditgate_relay_latency_seconds_bucket\{le="60",command="mail"\} [1-9]\d*$/m);
    });

    it('answers bad requests with a 4xx naming the problem', async () => {
      const cases: Array<[string, string, number, string, RegExp, string?]> = [
        ['GET', '/series/nope/count?key=192.0.2.7', 404, 'AG_SERIES_UNKNOWN', /unknown series "nope"/],
        ['GET', '/series/nope/top', 404, 'AG_SERIES_UNKNOWN', /nope/],
        ['DELETE', '/series/nope/items?key=1.2.3.4', 404, 'AG_SERIES_UNKNOWN', /nope/],
        ['GET', '/series/conn/count?key=not-an-ip', 400, 'AG_KEY_INVALID', /"not-an-ip" is not an IP address/],
        ['GET', '/series/conn/count?key=192.0.2.0/33', 400, 'AG_KEY_INVALID', /not an IP address/],
        ['GET', '/series/conn/count', 400, 'AG_KEY_INVALID', /key is required/],
        ['GET', '/series/conn/count?key=2001:db8::1', 400, 'AG_KEY_INVALID', /holds IPv4/],
        ['GET', '/series/conn/count?key=192.0.2.7&windows=3-1', 400, 'AG_WINDOW_RANGE', /start \(3\) is after the end \(1\)/],
        ['GET', '/series/conn/count?key=192.0.2.7&windows=0-9', 400, 'AG_WINDOW_RANGE', /windows 0-3/],
        ['GET', '/series/conn/count?key=192.0.2.7&windows=abc', 400, 'AG_WINDOW_RANGE', /not a window range/],
        ['GET', '/series/conn/top?mask=40', 400, 'AG_ADMIN_BAD_REQUEST', /mask "40" must be an integer from 0 to 32/],
        ['GET', '/series/conn/top?limit=0', 400, 'AG_ADMIN_BAD_REQUEST', /limit/],
        ['GET', '/sessions?family=5', 400, 'AG_ADMIN_BAD_REQUEST', /family/],
        ['GET', '/show/ip/garbage', 400, 'AG_KEY_INVALID', /garbage/],
        ['GET', '/series/%E0%A4%A/count', 400, 'AG_ADMIN_BAD_REQUEST', /percent-encoding/],
        ['GET', '/nowhere', 404, 'AG_ADMIN_NOT_FOUND', /no admin endpoint/],
        ['PUT', '/series', 405, 'AG_ADMIN_METHOD', /use GET/],
        ['POST', '/series/conn/add', 400, 'AG_ADMIN_BAD_JSON', /not valid JSON/, '{"key": '],
        ['POST', '/series/conn/add', 400, 'AG_ADMIN_BAD_JSON', /JSON body is required/, ''],
        ['POST', '/series/conn/add', 400, 'AG_ADMIN_BAD_JSON', /JSON object/, '[1,2]'],
        ['POST', '/series/conn/add', 400, 'AG_KEY_INVALID', /"key" must be a string/, '{"count": 1}'],
        ['POST', '/series/conn/add', 400, 'AG_KEY_INVALID', /not the prefix/, '{"key": "192.0.2.0/24"}'],
        ['POST', '/series/conn/add', 400, 'AG_ADMIN_BAD_REQUEST', /"count" must be an integer/, '{"key": "192.0.2.1", "count": 1.5}'],
        ['POST', '/series/conn/add', 400, 'AG_ADMIN_BAD_REQUEST', /"count" must be an integer/, '{"key": "192.0.2.1", "count": "7"}'],
        ['POST', '/series/nope/add', 404, 'AG_SERIES_UNKNOWN', /nope/, '{"key": "192.0.2.1"}'],
      ];
      for (const [method, p, status, code, message, body] of cases) {
        const r = await call(method, p, body === undefined ? {} : { body });
        expect({ p, body, status: r.status, code: r.body.code }).toEqual({ p, body, status, code });
        expect(r.body.error, `${method} ${p}`).toMatch(message);
      }
    });

    it('refuses an oversized body with 413, declared or streamed, and keeps serving', async () => {
      const big = JSON.stringify({ key: '192.0.2.1', pad: 'x'.repeat(100_000) });
      const r = await call('POST', '/series/conn/add', { body: big });
      expect(r.status).toBe(413);
      expect(r.body).toMatchObject({ code: 'AG_ADMIN_BODY_TOO_LARGE' });
      // chunked, no Content-Length
      const url = new URL(`${base}/series/conn/add`);
      const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } }, (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (b += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        });
        req.on('error', reject);
        for (let i = 0; i < 10; i++) req.write('x'.repeat(4096));
        req.end();
      });
      expect(streamed.status).toBe(413);
      expect(JSON.parse(streamed.body)).toMatchObject({ code: 'AG_ADMIN_BODY_TOO_LARGE' });
      expect((await call('GET', '/healthz', { token: null })).status).toBe(200);
      expect((await sendMail(gw.port, { preface: proxyV1('192.0.2.44') })).map((x) => x.code)).toEqual([220, 250, 250, 250, 250, 221]);
    });
  });

  describe('auditgate series CLI', () => {
    it('list prints an aligned table, --json the raw answer', async () => {
      const r = await cli(['list', ...admin()]);
      expect(r.code).toBe(0);
      const lines = r.out.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^SERIES\s+TYPE\s+INTERVAL\s+WINDOWS\s+KEYS\s+MEMORY\s+REPLICATE$/);
      expect(lines.find((l) => l.startsWith('conn '))).toMatch(/^conn\s+cidr\s+60s\s+4\s+\d+\s+[\d.]+ (B|KiB|MiB)\s+none$/);
      expect(lines.find((l) => l.startsWith(`${MON} `))).toMatch(/cidr \(monitor\)\s+300s\s+6/);
      // columns line up: every row's TYPE column starts where the header's does
      const col = lines[0]!.indexOf('TYPE');
      for (const l of lines.slice(1)) expect(l[col - 1]).toBe(' ');
      const j = await cli(['list', '--json', ...admin()]);
      expect(JSON.parse(j.out).series).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'conn', type: 'cidr' })]));
    });

    it('count, top, show, sessions, decisions', async () => {
      let r = await cli(['count', 'conn', '192.0.2.0/24', '--windows', '0-3', ...admin()]);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^SERIES\s+KEY\s+WINDOWS\s+COUNT\nconn\s+192\.0\.2\.0\/24\s+0-3\s+4\n$/);
      r = await cli(['count', 'conn', '192.0.2.0/24', '--windows', '0-3', '--json', ...admin()]);
      expect(JSON.parse(r.out)).toEqual({ series: 'conn', key: '192.0.2.0/24', windows: [0, 3], count: 4 });
      r = await cli(['top', 'conn', '--mask', '24', '--limit', '2', ...admin()]);
      expect(r.code).toBe(0);
      expect(r.out).toBe('# conn, windows 0-3, /24\nKEY              COUNT\n192.0.2.0/24         4\n198.51.100.0/24      3\n');
      r = await cli(['show', '192.0.2.7', ...admin()]);
      expect(r.out).toMatch(/^# 192\.0\.2\.7: 0 open sessions\n/);
      expect(r.out).toMatch(/^conn\s+60s\s+2\s+0 2 0 0$/m);
      expect(r.out).toMatch(/^connections:300,6 \(monitor\)\s+300s\s+2\s+2 0 0 0 0 0$/m);
      r = await cli(['sessions', '--mask', '24', ...admin()]);
      expect(r.out).toBe('# 1 open session (1 by address), IPv4 /24\nPREFIX          SESSIONS\n203.0.113.0/24         1\n');
      r = await cli(['decisions', '--limit', '1', ...admin()]);
      expect(r.out).toMatch(/^TIME\s+CLIENT\s+STAGE\s+POLICY\s+ACTION\s+MODE\s+KEY\s+COUNT\n\S+\s+198\.51\.100\.9\s+connect\s+per-ip\s+tempfail\s+enforce\s+198\.51\.100\.9\/32\s+3\/2\n$/);
    });

    it('add (and subtract with a negative --count) and delete', async () => {
      let r = await cli(['add', 'conn', '192.0.2.77', '--count', '4', ...admin()]);
      expect(r).toMatchObject({ code: 0, out: 'added 4 to 192.0.2.77 in conn; window 0 is now 4\n' });
      r = await cli(['add', 'conn', '192.0.2.77', '--count', '-1', ...admin()]);
      expect(r.out).toBe('subtracted 1 from 192.0.2.77 in conn; window 0 is now 3\n');
      r = await cli(['add', MON, '192.0.2.77', ...admin()]);
      expect(r.out).toBe(`added 1 to 192.0.2.77 in ${MON}; window 0 is now 1\n`);
      r = await cli(['delete', 'conn', '192.0.2.77', ...admin()]);
      expect(r.out).toBe('removed 1 key matching 192.0.2.77 from conn\n');
      expect((await call('GET', '/series/conn/count?key=192.0.2.77')).body.count).toBe(0);
    });

    it('takes the token from $AUDITGATE_TOKEN and the address and token from --config', async () => {
      expect((await cli(['list', '--admin', base], { AUDITGATE_TOKEN: TOKEN })).code).toBe(0);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-admin-'));
      try {
        const file = path.join(dir, 'gw.yaml');
        fs.writeFileSync(file, `server: { hostname: gw.test, listen: ["127.0.0.1:0"] }\nrelay: { url: "dir:${dir}" }\nadmin: { listen: "127.0.0.1:${gw.gateway.adminAddress()!.port}", token: ${TOKEN} }\n`);
        const r = await cli(['count', 'conn', '192.0.2.7', '--config', file]);
        expect(r.err).toBe('');
        expect(r).toMatchObject({ code: 0 });
        expect(r.out).toMatch(/^conn\s+192\.0\.2\.7\s+0-3\s+2$/m);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('exits 1 with the server error on 4xx, 2 on usage errors', async () => {
      let r = await cli(['count', 'nope', '192.0.2.7', ...admin()]);
      expect(r).toMatchObject({ code: 1, out: '' });
      expect(r.err).toBe('auditgate series: unknown series "nope" (AG_SERIES_UNKNOWN, HTTP 404)\n');
      r = await cli(['count', 'conn', 'garbage', ...admin()]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/"garbage" is not an IP address.*AG_KEY_INVALID, HTTP 400/);
      r = await cli(['list', '--admin', base]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/bearer token is required.*HTTP 401/);
      r = await cli(['list', '--admin', base, '--token', 'wrong']);
      expect(r.code).toBe(1);
      r = await cli(['list', '--admin', 'http://127.0.0.1:1']);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/cannot reach the admin listener at http:\/\/127\.0\.0\.1:1/);
      for (const bad of [[], ['frobnicate'], ['count', 'conn'], ['top'], ['count', 'conn', '1.2.3.4', '--windows', 'x'], ['list', '--bogus'], ['add', 'conn', '1.2.3.4', '--count', 'many'], ['sessions', '--family', '5']]) {
        const u = await cli([...bad, ...admin()]);
        expect(u.code, bad.join(' ')).toBe(2);
        expect(u.err).toMatch(/usage: auditgate series/);
      }
    });
  });
});
