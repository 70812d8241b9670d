/**
 * The admin listener refuses what a web page in a browser on the gateway host can send (issue
 * 10, item 3): a cross-site text/plain POST, a form, a DNS-rebound Host, `Origin: null`. Raw
 * HTTP with crafted headers against a real gateway whose admin listener has no token (the
 * loopback default). Also: clients that reset mid-request, mid-body and on an idle keep-alive
 * connection do not take the listener down.
 */
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminRequest } from '../../src/admin/client.js';
import { startTestGateway, type TestGateway } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const BODY = `
series:
  connections: { type: cidr, interval: 1h, windows: 4 }
record:
  - { on: connect, series: connections }
policies:
  - { name: per-ip, on: connect, series: connections, mask: 32, windows: [0, 3], above: 100, action: tempfail }
`;
const ATTACK = JSON.stringify({ key: '127.0.0.1', count: 1_000_000 });

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: http.IncomingHttpHeaders;
}

describe('admin listener: Host, cross-site and body-type checks', () => {
  let gw: TestGateway;
  let dir: string;
  let port: number;

  /** One request with exactly these headers (Host: 127.0.0.1:PORT unless given). */
  function raw(method: string, p: string, headers: Record<string, string>, body?: string): Promise<Answer> {
    const h: Record<string, string> = { host: `127.0.0.1:${port}`, ...headers };
    if (body !== undefined) h['content-length'] = String(Buffer.byteLength(body));
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: false, setHost: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown>, headers: res.headers });
          } catch {
            reject(new Error(`${method} ${p}: HTTP ${res.statusCode} with a body that is not JSON: ${JSON.stringify(text)}`));
          }
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  const count = async (key = '127.0.0.1'): Promise<number> => {
    const r = await raw('GET', `/series/connections/count?key=${key}`, {});
    expect(r.status).toBe(200);
    return r.body.count as number;
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-guard-'));
    gw = await startTestGateway({ relay: `dir:${dir}`, body: BODY, admin: '{ listen: "127.0.0.1:0", hosts: [Admin.Test.Example] }' });
    port = gw.gateway.adminAddress()!.port;
  });
  afterAll(async () => {
    await gw?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the reproduced attack: a text/plain POST from another site; the count does not move', async () => {
    const before = await count();
    // what Chromium sent for fetch(..., {mode: 'no-cors', headers: {'Content-Type': 'text/plain'}})
    let r = await raw('POST', '/series/connections/add', { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain;charset=UTF-8' }, ATTACK);
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: 'AG_ADMIN_CROSS_SITE', error: expect.stringMatching(/Sec-Fetch-Site "cross-site"/) });
    expect(r.headers.connection).toBe('close');
    // an older browser that sends only Origin
    r = await raw('POST', '/series/connections/add', { origin: 'http://evil.example', 'content-type': 'text/plain' }, ATTACK);
    expect(r.body).toMatchObject({ code: 'AG_ADMIN_CROSS_SITE', error: expect.stringMatching(/Origin "http:\/\/evil\.example" is not this listener/) });
    // no Origin at all, but a body a page could send without a preflight: 415 before the body is read
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      r = await raw('POST', '/series/connections/add', { 'content-type': ct }, ATTACK);
      expect({ ct, status: r.status, code: r.body.code }).toEqual({ ct, status: 415, code: 'AG_ADMIN_CONTENT_TYPE' });
    }
    r = await raw('POST', '/series/connections/add', {}, ATTACK);
    expect(r).toMatchObject({ status: 415, body: { code: 'AG_ADMIN_CONTENT_TYPE' } });
    expect(await count()).toBe(before);
  });

  it('refuses a DNS-rebound Host on every endpoint, /healthz included (421)', async () => {
    const rebind = `rebind.evil.example:${port}`;
    for (const p of ['/series', '/healthz', '/metrics', '/show/ip/127.0.0.1', '/nowhere']) {
      // after a rebind the browser thinks it is same-origin: Origin and Sec-Fetch-Site agree with Host
      for (const extra of [{} as Record<string, string>, { 'sec-fetch-site': 'same-origin' }, { origin: `http://${rebind}`, 'sec-fetch-site': 'same-origin' }]) {
        const r = await raw('GET', p, { host: rebind, ...extra });
        expect({ p, status: r.status, code: r.body.code }).toEqual({ p, status: 421, code: 'AG_ADMIN_FORBIDDEN_HOST' });
      }
    }
    const r = await raw('DELETE', '/series/connections/items?key=127.0.0.1', { host: rebind });
    expect(r.body.error).toMatch(/Host "rebind\.evil\.example:\d+" is not a name of this admin listener.*admin\.hosts/);
    for (const host of ['evil.example', `localhost.evil.example:${port}`, 'garbage host', `[::1`]) {
      expect((await raw('GET', '/healthz', { host })).status, host).toBe(421);
    }
  });

  it('refuses cross-site and same-site Sec-Fetch-Site, Origin: null, and a DELETE from another site', async () => {
    await raw('POST', '/series/connections/add', { 'content-type': 'application/json' }, JSON.stringify({ key: '192.0.2.9', count: 3 }));
    for (const site of ['cross-site', 'same-site']) {
      const r = await raw('GET', '/series', { 'sec-fetch-site': site });
      expect({ site, status: r.status, code: r.body.code }).toEqual({ site, status: 403, code: 'AG_ADMIN_CROSS_SITE' });
    }
    // sandboxed iframes, data: and file: pages send Origin: null
    let r = await raw('POST', '/series/connections/add', { origin: 'null', 'content-type': 'application/json' }, ATTACK);
    expect(r).toMatchObject({ status: 403, body: { code: 'AG_ADMIN_CROSS_SITE' } });
    // another port on the same address is another origin
    r = await raw('DELETE', '/series/connections/items?key=192.0.2.9', { origin: `http://127.0.0.1:${port + 1}` });
    expect(r).toMatchObject({ status: 403, body: { code: 'AG_ADMIN_CROSS_SITE' } });
    r = await raw('DELETE', '/series/connections/items?key=192.0.2.9', { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' });
    expect(r.status).toBe(403);
    expect(await count('192.0.2.9')).toBe(3);
    expect(await count()).toBe(0);
  });

  it('serves same-origin pages, typed URLs, non-browser clients and configured names', async () => {
    const own = `http://127.0.0.1:${port}`;
    let r = await raw('POST', '/series/connections/add', { origin: own, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json; charset=utf-8' }, JSON.stringify({ key: '192.0.2.10', count: 2 }));
    expect(r).toMatchObject({ status: 200, body: { key: '192.0.2.10', count: 2 } });
    r = await raw('GET', '/series', { 'sec-fetch-site': 'same-origin' });
    expect(r.status).toBe(200);
    r = await raw('GET', '/series', { 'sec-fetch-site': 'none' });
    expect(r.status).toBe(200);
    r = await raw('DELETE', '/series/connections/items?key=192.0.2.10', { origin: own, 'sec-fetch-site': 'same-origin' });
    expect(r).toMatchObject({ status: 200, body: { removed: 1 } });
    // the CLI's request (fetch from Node: no Origin, no Sec-Fetch-Site, JSON content type)
    const added = await adminRequest({ url: own }, 'POST', '/series/connections/add', { key: '192.0.2.11', count: 4 });
    expect(added).toMatchObject({ key: '192.0.2.11', count: 4 });
    // localhost on a loopback listener; a configured name, any case, any port; IPv6-literal Host
    for (const host of [`localhost:${port}`, 'LOCALHOST', `admin.test.example:${port}`, 'ADMIN.TEST.EXAMPLE:8443', `[::1]:${port}`, '127.0.0.1']) {
      r = await raw('GET', '/series', { host });
      expect({ host, status: r.status }).toEqual({ host, status: 200 });
    }
    r = await raw('POST', '/series/connections/add', { host: `admin.test.example:${port}`, origin: `http://admin.test.example:${port}`, 'content-type': 'application/json' }, JSON.stringify({ key: '192.0.2.11' }));
    expect(r).toMatchObject({ status: 200, body: { count: 5 } });
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    // HTTP/1.0 tools send no Host at all (an HTTP/1.1 request without one is a 400 from node:http)
    const old = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => s.end('GET /healthz HTTP/1.0\r\n\r\n'));
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    expect(old).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*"status": "ok"/);
  });
});

describe('admin listener: clients that reset the connection', () => {
  let gw: TestGateway;
  let dir: string;
  let port: number;

  function connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
    });
  }
  /** Resolves with what the server has sent once `pattern` appears in it. */
  function readUntil(s: net.Socket, pattern: RegExp): Promise<string> {
    return new Promise((resolve, reject) => {
      let got = '';
      const onData = (c: Buffer): void => {
        got += c.toString('latin1');
        if (pattern.test(got)) {
          s.off('data', onData);
          resolve(got);
        }
      };
      s.on('data', onData);
      s.once('close', () => reject(new Error(`closed before ${pattern} (got ${JSON.stringify(got)})`)));
    });
  }
  const healthz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${port}/healthz`)).status;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-reset-'));
    gw = await startTestGateway({ relay: `dir:${dir}`, body: BODY, admin: '{ listen: "127.0.0.1:0" }' });
    port = gw.gateway.adminAddress()!.port;
  });
  afterAll(async () => {
    await gw?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('survives resets mid-headers, mid-body, after a refusal and on an idle keep-alive connection', async () => {
    const admin = gw.gateway.admin!;
    for (let round = 0; round < 5; round++) {
      // mid-headers
      let s = await connect();
      s.write(`GET /series HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Pad: `);
      s.resetAndDestroy();

      // mid-body: the handler is reading the body when the reset comes (100-continue proves it started)
      s = await connect();
      const cont = readUntil(s, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
      s.write(`POST /series/connections/add HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n`);
      await cont;
      s.write('{"key": "192.0.2.1", ');
      s.resetAndDestroy();

      // a refused request whose body is still coming
      s = await connect();
      const refused = readUntil(s, /\r\n\r\n\{[^]*\}\n$/);
      s.write(`POST /series/connections/add HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
      expect(await refused).toMatch(/^HTTP\/1\.1 415 /);
      s.resetAndDestroy();

      // idle keep-alive: one full answer, then a reset while the server waits for the next request
      s = await connect();
      const answer = readUntil(s, /\r\n\r\n\{[^]*\}\n$/);
      s.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      expect(await answer).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*Connection: keep-alive/i);
      s.resetAndDestroy();

      // pipelined: reset after the first of two answers
      s = await connect();
      const first = readUntil(s, /\r\n\r\n\{[^]*?\}\n/);
      s.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\nGET /series HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      await first;
      s.resetAndDestroy();
    }
    // every reset has landed on the server side, and the listener still answers
    await waitFor(() => admin.openConnections() === 0);
    expect(await healthz()).toBe(200);
    const r = await adminRequest({ url: `http://127.0.0.1:${port}` }, 'POST', '/series/connections/add', { key: '192.0.2.1', count: 2 });
    expect(r).toMatchObject({ count: 2 });
    expect(gw.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });
});
