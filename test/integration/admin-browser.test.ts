/**
 * The attack of issue 10 (item 3) in a real headless Chromium: a page from another site, opened
 * in a browser on the gateway host, POSTs to the token-less loopback admin listener with
 * fetch(no-cors, text/plain) and with forms. The admin listener must refuse every one of them
 * and the series count must not move. Also: after a DNS rebind (simulated with Chromium's host
 * resolver rules) the listener refuses the attacker's name; a typed URL and a page the listener
 * itself served keep working.
 */
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findChromium, launchChromium, screenshot, skipWithoutChromium, type BrowserSession } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/smtp.js';

const BODY = `
series:
  connections: { type: cidr, interval: 1h, windows: 4 }
record:
  - { on: connect, series: connections }
policies:
  - { name: per-ip, on: connect, series: connections, mask: 32, windows: [0, 3], above: 100, action: tempfail }
`;
const REBIND = 'rebind.evil.example';
const chromiumPath = findChromium();

/** The attacker's page: a no-cors fetch (run from the test) and two forms aimed at the admin API. */
function attackerPage(admin: string): string {
  const action = `${admin}/series/connections/add`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>not evil at all</title></head><body>
<h1>A page from another site</h1>
<form id="plain" method="POST" enctype="text/plain" action="${action}">
  <input name='{"key":"127.0.0.1","count":1000000,"pad":"' value='"}'>
</form>
<form id="urlencoded" method="POST" action="${action}"><input name="key" value="127.0.0.1"><input name="count" value="1000000"></form>
</body></html>`;
}

function listen(server: http.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

describe.skipIf(skipWithoutChromium(chromiumPath))('admin listener in a real browser (headless Chromium)', () => {
  let gw: TestGateway;
  let dir: string;
  let admin: string;
  let adminPort: number;
  let attacker: http.Server;
  let evil: string;
  let sameSite: string;
  let browser: BrowserSession;

  const count = async (key = '127.0.0.1'): Promise<number> => {
    const r = await fetch(`${admin}/series/connections/count?key=${key}`);
    expect(r.status).toBe(200);
    return ((await r.json()) as { count: number }).count;
  };
  const isAdd = (r: Response): boolean => r.url() === `${admin}/series/connections/add` && r.request().method() === 'POST';
  const bodyOf = async (r: Response): Promise<Record<string, unknown>> => JSON.parse(await r.text()) as Record<string, unknown>;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-browser-'));
    gw = await startTestGateway({ relay: `dir:${dir}`, body: BODY, admin: '{ listen: "127.0.0.1:0" }' });
    adminPort = gw.gateway.adminAddress()!.port;
    admin = `http://127.0.0.1:${adminPort}`;
    attacker = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end(attackerPage(admin));
    });
    // Another address on loopback: another site. The same address on another port: the same site.
    evil = `http://127.0.0.2:${await listen(attacker, '127.0.0.2')}`;
    const sibling = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end(attackerPage(admin));
    });
    sameSite = `http://127.0.0.1:${await listen(sibling, '127.0.0.1')}`;
    attacker.on('close', () => sibling.close());
    browser = await launchChromium({ executable: chromiumPath, args: [`--host-resolver-rules=MAP ${REBIND} 127.0.0.1`] });
  });
  afterAll(async () => {
    await browser?.close();
    attacker?.close();
    attacker?.closeAllConnections();
    await gw?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a cross-site fetch(no-cors, text/plain) POST; the count does not move', async () => {
    const before = await count();
    const { page } = browser;
    await page.goto(`${evil}/`);
    const answered = page.waitForResponse(isAdd);
    const sent = await page.evaluate(async (url) => {
      await fetch(url, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ key: '127.0.0.1', count: 1000000 }) });
      return 'sent';
    }, `${admin}/series/connections/add`);
    expect(sent).toBe('sent');
    const res = await answered;
    // the page gets an opaque answer; the browser's network log has the status (the body of an
    // opaque response is not kept: the form test below reads the refusal's code)
    expect(res.status()).toBe(403);
    expect(await count()).toBe(before);
  });

  it('refuses cross-site and same-site form POSTs (text/plain and urlencoded)', async () => {
    const before = await count();
    const { page } = browser;
    for (const [site, form] of [
      [evil, 'plain'],
      [evil, 'urlencoded'],
      [sameSite, 'plain'],
    ] as const) {
      await page.goto(`${site}/`);
      const answered = page.waitForResponse(isAdd);
      await page.evaluate((id) => (document.getElementById(id) as HTMLFormElement).submit(), form);
      const res = await answered;
      expect({ site, form, status: res.status() }).toEqual({ site, form, status: 403 });
      expect(await bodyOf(res)).toMatchObject({ code: 'AG_ADMIN_CROSS_SITE', error: expect.stringMatching(site === evil ? /"cross-site"/ : /"same-site"/) });
      await page.waitForLoadState();
      if (site === evil && form === 'plain') await screenshot(page, 'admin-cross-site-form-refused');
    }
    expect(await count()).toBe(before);
  });

  it('refuses the attacker\'s name after a DNS rebind, even for requests the browser thinks are same-origin', async () => {
    const { page } = browser;
    const res = await page.goto(`http://${REBIND}:${adminPort}/series`);
    expect(res!.status()).toBe(421);
    expect(await res!.text()).toMatch(/AG_ADMIN_FORBIDDEN_HOST/);
    await screenshot(page, 'admin-rebind-refused');
    const statuses = await page.evaluate(async () => {
      const get = await fetch('/series');
      const del = await fetch('/series/connections/items?key=127.0.0.1', { method: 'DELETE' });
      return [get.status, del.status];
    });
    expect(statuses).toEqual([421, 421]);
  });

  it('serves a typed URL and same-origin requests from a page the listener served', async () => {
    const { page } = browser;
    for (const url of [`${admin}/series`, `http://localhost:${adminPort}/healthz`]) {
      const res = await page.goto(url);
      expect({ url, status: res!.status() }).toEqual({ url, status: 200 });
    }
    await page.goto(`${admin}/healthz`);
    const result = await page.evaluate(async () => {
      const list = await fetch('/series');
      const add = await fetch('/series/connections/add', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ key: '192.0.2.50', count: 3 }) });
      return { list: list.status, add: add.status, body: (await add.json()) as unknown };
    });
    expect(result).toEqual({ list: 200, add: 200, body: { series: 'connections', key: '192.0.2.50', added: 3, count: 3 } });
    expect(await count('192.0.2.50')).toBe(3);
  });
});
