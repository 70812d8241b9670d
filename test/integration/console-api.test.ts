/**
 * The console's endpoints on a real gateway over real sockets: the page and its modules (from
 * the TypeScript sources, compiled on first request), /auth, the live decision stream fed by
 * real SMTP refusals (IPv4 and IPv6 through PROXY headers), /rates, show ip's bans and
 * decisions, top per window; and a decision listener that throws does not touch the session.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Proc } from '../helpers/process.js';
import { proxyV1, sendMail, SmtpTestClient, startTestGateway, type TestGateway } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';
import { reader } from '../helpers/stream.js';

const TOKEN = 'api-test-token';
const body = (stateDir: string): string => `
state_dir: ${JSON.stringify(stateDir)}
series:
  connections: { type: cidr, interval: 1m, windows: 3 }
  connections6: { type: cidr_ipv6, interval: 1m, windows: 3, store_prefix: 64 }
record:
  - { on: connect, series: [connections, connections6] }
policies:
  - { name: flood, on: connect, series: connections, mask: 24, windows: [0, 2], above: 2, action: tempfail, ban: 10m }
  - { name: flood6, on: connect, series: connections6, mask: 48, windows: [0, 2], above: 2, action: reject }
`;

describe('web console endpoints', () => {
  let gw: TestGateway;
  let admin: string;
  const dirs: string[] = [];
  const auth = { authorization: `Bearer ${TOKEN}` };
  const tmp = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-console-api-'));
    dirs.push(d);
    return d;
  };
  const greet = async (ip: string): Promise<number> => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    c.close();
    return c.greeting.code;
  };

  beforeAll(async () => {
    gw = await startTestGateway({ relay: `dir:${tmp()}`, body: body(tmp()), admin: `{ listen: "127.0.0.1:0", token: ${TOKEN} }` });
    admin = `http://127.0.0.1:${gw.gateway.adminAddress()!.port}`;
  });
  afterAll(async () => {
    await gw?.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('serves the page without a token, with a CSP that allows this listener only', async () => {
    const r = await fetch(`${admin}/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('content-security-policy')).toContain("default-src 'none'; script-src 'self'");
    expect(r.headers.get('x-frame-options')).toBe('DENY');
    const html = await r.text();
    expect(html).toContain('<script type="module" src="console/main.js"></script>');
    expect(html).not.toMatch(/https?:\/\//);
  });

  it('serves the modules compiled from the sources, the style sheet, and 404 for anything else', async () => {
    const js = await fetch(`${admin}/console/main.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const text = await js.text();
    expect(text).toContain("from './view-bans.js'");
    expect(text).not.toContain('import type');
    expect((await fetch(`${admin}/console/console.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    for (const bad of ['nope.js', 'main.ts', '..%2Fconsole.js', 'Main.js']) {
      const r = await fetch(`${admin}/console/${bad}`);
      expect(r.status, bad).toBe(404);
      expect(((await r.json()) as { code: string }).code).toBe('AG_ADMIN_NOT_FOUND');
    }
  });

  it('/auth says whether a token is needed and whether the one sent is right (always 200)', async () => {
    expect(await (await fetch(`${admin}/auth`)).json()).toEqual({ required: true, authorized: false });
    expect(await (await fetch(`${admin}/auth`, { headers: { authorization: 'Bearer wrong' } })).json()).toEqual({ required: true, authorized: false });
    expect(await (await fetch(`${admin}/auth`, { headers: auth })).json()).toEqual({ required: true, authorized: true });
    expect((await fetch(`${admin}/events/decisions`)).status).toBe(401);
    expect((await fetch(`${admin}/rates`)).status).toBe(401);
    // HEAD answers the stream's headers and keeps no stream open.
    const head = await fetch(`${admin}/events/decisions`, { method: 'HEAD', headers: auth });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(gw.gateway.admin!.console.stream.size()).toBe(0);
  });

  it('streams the refusals of real SMTP clients, IPv4 and IPv6, as they happen', async () => {
    const res = await fetch(`${admin}/events/decisions`, { headers: auth });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const live = reader(res);
    try {
      await waitFor(() => live.text().includes('retry: 2000'));
      let v4 = 0;
      for (let i = 0; i < 5 && v4 !== 421; i++) v4 = await greet('203.0.113.8');
      expect(v4).toBe(421);
      let v6 = 0;
      for (let i = 0; i < 5 && v6 !== 554; i++) v6 = await greet('2001:db8:5:6::9');
      expect(v6).toBe(554);
      await waitFor(() => live.text().includes('"client":"2001:db8:5:6::9"'), 10_000);
      const events = live
        .text()
        .split('\n\n')
        .filter((b) => b.includes('event: decision'))
        .map((b) => JSON.parse(/data: (.*)/.exec(b)![1]!) as Record<string, unknown>);
      expect(events[0]).toMatchObject({ front: 'smtp', stage: 'connect', client: '203.0.113.8', action: 'tempfail', policy: 'flood' });
      expect(String(events[0]!.reply)).toMatch(/^421 4\.7\.0 .*@gw\.test\]$/);
      expect(events.at(-1)).toMatchObject({ client: '2001:db8:5:6::9', action: 'reject', policy: 'flood6' });
    } finally {
      live.stop();
    }
    // The ban the v4 refusal issued refuses the next connect: a decision naming the ban.
    expect(await greet('203.0.113.9')).toBe(421);
    const show = (await (await fetch(`${admin}/show/ip/203.0.113.9`, { headers: auth })).json()) as { bans: Array<{ prefix: string }>; decisions: Array<Record<string, unknown>> };
    expect(show.bans.map((b) => b.prefix)).toEqual(['203.0.113.0/24']);
    expect(show.decisions[0]).toMatchObject({ client: '203.0.113.9', policy: 'flood', ban: '203.0.113.0/24' });
    const elsewhere = (await (await fetch(`${admin}/show/ip/198.51.100.1`, { headers: auth })).json()) as { bans: unknown[]; decisions: unknown[] };
    expect(elsewhere).toMatchObject({ bans: [], decisions: [] });
  });

  it('/rates has the policies that fired, per minute over the last hour', async () => {
    const r = (await (await fetch(`${admin}/rates`, { headers: auth })).json()) as { minutes: number; rates: Array<{ policy: string; mode: string; per_minute: number[]; total: number }> };
    expect(r.minutes).toBe(60);
    const flood6 = r.rates.find((x) => x.policy === 'flood6')!;
    expect(flood6.per_minute).toHaveLength(60);
    expect(flood6.total).toBeGreaterThanOrEqual(1);
    expect(flood6.per_minute.reduce((a, b) => a + b, 0)).toBe(flood6.total);
  });

  it('top per_window=1 counts each top entry per window', async () => {
    await sendMail(gw.port, { preface: proxyV1('198.51.100.20') });
    const r = (await (await fetch(`${admin}/series/connections/top?mask=24&per_window=1`, { headers: auth })).json()) as { top: Array<{ key: string; count: number; windows: number[] }> };
    const e = r.top.find((t) => t.key === '198.51.100.0/24')!;
    expect(e.windows).toHaveLength(3);
    expect(e.windows.reduce((a, b) => a + b, 0)).toBe(e.count);
    expect(e.windows[0]).toBe(1);
  });

  it('a decision listener that throws is logged; the client still gets its reply', async () => {
    const boom = (): void => {
      throw new Error('listener boom');
    };
    gw.gateway.events.on('decision', boom);
    try {
      expect(await greet('2001:db8:5:6::10')).toBe(554);
      await waitFor(() => gw.logs.some((l) => l.msg === 'a decision listener failed'));
    } finally {
      gw.gateway.events.off('decision', boom);
    }
    expect(await greet('2001:db8:5:6::11')).toBe(554);
  });
});

describe('the built package (npm run build: dist/)', () => {
  it('auditgate serve from dist/ serves the compiled modules, every one main.js imports', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const built = path.join(root, 'dist/src/console');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-console-dist-'));
    const file = path.join(dir, 'auditgate.yaml');
    fs.writeFileSync(
      file,
      `server: { hostname: dist.test, listen: ["127.0.0.1:0"] }\nrelay: { url: "dir:${path.join(dir, 'mail')}" }\nstate_dir: ${path.join(dir, 'state')}\nlog_dir: ${path.join(dir, 'log')}\nadmin: { listen: "127.0.0.1:0" }\nseries:\n  c: { type: cidr, interval: 1m, windows: 2 }\n`,
    );
    const p = new Proc(spawn(process.execPath, [path.join(root, 'dist/src/cli.js'), 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    try {
      const up = await p.waitFor((l) => l.msg === 'auditgate listening');
      const base = `http://127.0.0.1:${(up.admin as { port: number }).port}`;
      expect((await fetch(`${base}/`)).status).toBe(200);
      const seen = new Set<string>();
      const todo = ['main.js'];
      while (todo.length) {
        const name = todo.pop()!;
        if (seen.has(name)) continue;
        seen.add(name);
        const r = await fetch(`${base}/console/${name}`);
        expect(r.status, name).toBe(200);
        const text = await r.text();
        expect(text).toBe(fs.readFileSync(path.join(built, name), 'utf8'));
        for (const m of text.matchAll(/from '\.\/([a-z-]+\.js)'/g)) todo.push(m[1]!);
      }
      expect(seen.size).toBeGreaterThan(8);
    } finally {
      p.child.kill('SIGKILL');
      await p.exit;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
