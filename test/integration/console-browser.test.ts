/**
 * The web console (issue 17) in a real headless Chromium (Debian's chromium, playwright-core):
 * the page loads, asks for the token when one is set, shows top talkers after real SMTP traffic
 * (IPv4 and IPv6 through PROXY headers), shows a refusal in the live decisions within 2 s, lifts
 * a ban with its button from the keyboard, works at 1280×800 and at a phone width, and logs no
 * console errors. Screenshots go to test-artifacts/ (git-ignored).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findChromium, launchChromium, screenshot, skipWithoutChromium, type BrowserSession } from '../helpers/browser.js';
import { proxyV1, sendMail, SmtpTestClient, startTestGateway, type TestGateway } from '../helpers/smtp.js';

const chromiumPath = findChromium();
const TOKEN = 'console-test-token';

const body = (stateDir: string): string => `
state_dir: ${JSON.stringify(stateDir)}
series:
  connections: { type: cidr, interval: 1m, windows: 4 }
  connections6: { type: cidr_ipv6, interval: 1m, windows: 4, store_prefix: 64 }
record:
  - { on: connect, series: [connections, connections6] }
policies:
  - { name: flood, on: connect, series: connections, mask: 24, windows: [0, 3], above: 3, action: tempfail, ban: 10m }
`;

/** Console errors and uncaught page errors, with the page they happened on. */
function watchErrors(page: Page, into: string[]): void {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') into.push(`${m.type()}: ${m.text()} (${page.url()})`);
  });
  page.on('pageerror', (e) => into.push(`pageerror: ${e.message} (${page.url()})`));
}

describe.skipIf(skipWithoutChromium(chromiumPath))('web console in a real browser (headless Chromium)', () => {
  let gw: TestGateway;
  let tokenGw: TestGateway;
  let dirs: string[] = [];
  let admin: string;
  let browser: BrowserSession;
  const errors: string[] = [];

  const tmp = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-console-'));
    dirs.push(d);
    return d;
  };
  const connect = async (ip: string): Promise<number> => {
    const c = await SmtpTestClient.connect(gw.port, { preface: proxyV1(ip) });
    const code = c.greeting.code;
    c.close();
    return code;
  };

  beforeAll(async () => {
    gw = await startTestGateway({ relay: `dir:${tmp()}`, body: body(tmp()), admin: '{ listen: "127.0.0.1:0" }' });
    admin = `http://127.0.0.1:${gw.gateway.adminAddress()!.port}`;
    tokenGw = await startTestGateway({ relay: `dir:${tmp()}`, body: body(tmp()), admin: `{ listen: "127.0.0.1:0", token: ${TOKEN} }` });
    browser = await launchChromium({ executable: chromiumPath });
    watchErrors(browser.page, errors);
    await browser.page.setViewportSize({ width: 1280, height: 800 });
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await tokenGw?.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    dirs = [];
  });

  it('loads without a token on loopback and lists the series', async () => {
    const { page } = browser;
    await page.goto(`${admin}/`);
    await page.waitForSelector('main table caption');
    expect(await page.textContent('main caption')).toContain('2 series');
    expect(await page.textContent('main table')).toContain('connections6');
    expect(await page.isVisible('#token-dialog')).toBe(false);
    await screenshot(page, 'console-series-1280x800');
  });

  it('shows top talkers after real SMTP traffic, IPv4 and IPv6, with a bar per window', async () => {
    // 3 connections from 198.51.100.0/24: as many as flood allows (above: 3), so nothing is refused here.
    for (let i = 0; i < 2; i++) expect((await sendMail(gw.port, { preface: proxyV1('198.51.100.7') })).at(-2)?.code).toBe(250);
    await sendMail(gw.port, { preface: proxyV1('198.51.100.9') });
    for (let i = 0; i < 2; i++) await sendMail(gw.port, { preface: proxyV1('2001:db8:1:2::7') });
    const { page } = browser;
    await page.goto(`${admin}/#top/connections/24`);
    await page.waitForFunction(() => document.querySelector('main tbody')?.textContent?.includes('198.51.100.0/24'), undefined, { timeout: 10_000 });
    expect(await page.locator('main tbody tr').first().innerText()).toMatch(/^198\.51\.100\.0\/24\s+3\s/);
    expect(await page.locator('main thead th').allInnerTexts()).toEqual(['Key', 'Total', 'Window 0', 'Window 1', 'Window 2', 'Window 3']);
    expect(await page.locator('main tbody tr').first().locator('.bar').count()).toBe(4);
    await screenshot(page, 'console-top-v4');

    await page.goto(`${admin}/#top/connections6/48`);
    await page.waitForFunction(() => document.querySelector('main tbody')?.textContent?.includes('2001:db8:1::/48'), undefined, { timeout: 10_000 });
    expect(await page.locator('main tbody tr').first().innerText()).toMatch(/2001:db8:1::\/48\s+2/);
  });

  it('shows a refusal in the live decisions within 2 s, and the client page has it', async () => {
    const { page } = browser;
    await page.goto(`${admin}/#decisions`);
    await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent === 'Live.', undefined, { timeout: 10_000 });
    let code = 0;
    for (let i = 0; i < 10 && code !== 421; i++) code = await connect('192.0.2.5');
    expect(code).toBe(421);
    // A functional deadline (the "within 2 s"), not a performance figure.
    await page.waitForFunction(() => /tempfail[\s\S]*flood[\s\S]*192\.0\.2\.5/.test(document.getElementById('decisions-body')?.textContent ?? ''), undefined, { timeout: 2000 });
    expect(await page.locator('#decisions-body tr').first().innerText()).toContain('421 4.7.0');
    await screenshot(page, 'console-decisions');

    await page.goto(`${admin}/#client/192.0.2.5`);
    await page.waitForFunction(() => (document.querySelector('main')?.textContent ?? '').includes('Recent decisions'), undefined, { timeout: 10_000 });
    const text = await page.locator('main').innerText();
    expect(text).toContain('192.0.2.0/24'); // the active ban the refusal issued
    expect(text).toMatch(/connections\s+series\s+1m\s+\d+/);
    expect(text).toContain('flood');
    await screenshot(page, 'console-client');
  });

  it('reconnects when the stream drops and resumes after the last decision it saw', async () => {
    const { page } = browser;
    await page.goto(`${admin}/#decisions`);
    await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent === 'Live.', undefined, { timeout: 10_000 });
    const rows = page.locator('#decisions-body tr');
    await page.waitForFunction(() => !(document.getElementById('decisions-body')?.textContent ?? '').includes('No decisions yet'));
    const before = await rows.count();
    gw.gateway.admin!.console.stream.disconnectAll();
    // The page says so, waits the server's retry: 2000, and connects again.
    await page.waitForFunction(() => (document.querySelector('main [role=status]')?.textContent ?? '').includes('reconnecting'), undefined, { timeout: 10_000, polling: 20 });
    await page.waitForFunction(() => document.querySelector('main [role=status]')?.textContent === 'Live.', undefined, { timeout: 10_000 });
    // 192.0.2.0/24 is banned: the next connect is refused by the ban, a new decision.
    expect(await connect('192.0.2.6')).toBe(421);
    await page.waitForFunction(() => (document.getElementById('decisions-body')?.textContent ?? '').includes('192.0.2.6'), undefined, { timeout: 10_000 });
    expect(await rows.count()).toBe(before + 1); // resumed after Last-Event-ID: nothing sent twice
    expect(await rows.first().innerText()).toContain('flood (ban 192.0.2.0/24)');
  });

  it('lifts a ban with its button, from the keyboard (Tab to it, Enter)', async () => {
    expect(gw.gateway.controls.list().map((b) => b.prefix)).toContain('192.0.2.0/24');
    const { page } = browser;
    await page.goto(`${admin}/#bans`);
    const button = page.getByRole('button', { name: 'Lift the ban on 192.0.2.0/24' });
    await button.waitFor({ timeout: 10_000 });
    let focused = false;
    for (let i = 0; i < 60 && !focused; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') === 'Lift the ban on 192.0.2.0/24');
    }
    expect(focused).toBe(true);
    await screenshot(page, 'console-bans-focused');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => (document.querySelector('main [role=status]')?.textContent ?? '').includes('Lifted the ban on 192.0.2.0/24'), undefined, { timeout: 10_000 });
    expect(gw.gateway.controls.list()).toEqual([]);
    await page.waitForFunction(() => (document.querySelector('main tbody')?.textContent ?? '').includes('No active bans'), undefined, { timeout: 10_000 });

    // The add form bans by hand; the new ban is listed with its own lift button.
    await page.fill('#ban-prefix', '203.0.113.0/24');
    await page.fill('#ban-for', '30m');
    await page.click('form[aria-label="Add a ban"] button');
    await page.getByRole('button', { name: 'Lift the ban on 203.0.113.0/24' }).waitFor({ timeout: 10_000 });
    expect(gw.gateway.controls.list().map((b) => b.prefix)).toEqual(['203.0.113.0/24']);
  });

  it('shows firing rates, sessions and store state', async () => {
    const { page } = browser;
    await page.goto(`${admin}/#rates`);
    await page.waitForFunction(() => (document.querySelector('main tbody')?.textContent ?? '').includes('flood'), undefined, { timeout: 10_000 });
    expect(await page.locator('main tbody tr').first().innerText()).toMatch(/flood\s+tempfail\s+enforce\s+\d+/);
    await page.goto(`${admin}/#store`);
    await page.waitForFunction(() => (document.querySelector('main tbody')?.textContent ?? '').includes('State'), undefined, { timeout: 10_000 });
    expect(await page.locator('main tbody').innerText()).toMatch(/State\s+ok/);
    const held = await SmtpTestClient.connect(gw.port, { preface: proxyV1('2001:db8:9::1') });
    try {
      await page.goto(`${admin}/#sessions`);
      await page.waitForFunction(() => (document.querySelector('main')?.textContent ?? '').includes('2001:db8:9::/64'), undefined, { timeout: 10_000 });
    } finally {
      held.close();
    }
  });

  it('fits a phone width (390 px) without sideways scrolling of the page', async () => {
    const { page } = browser;
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      for (const view of ['top/connections/24', 'decisions', 'bans']) {
        await page.goto(`${admin}/#${view}`);
        await page.waitForSelector('main table');
        expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      }
      await screenshot(page, 'console-bans-phone');
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it('asks for the token once when one is set, and keeps it for the tab', async () => {
    const { page } = browser;
    const tokenAdmin = `http://127.0.0.1:${tokenGw.gateway.adminAddress()!.port}`;
    await page.goto(`${tokenAdmin}/`);
    await page.waitForSelector('#token-dialog[open]');
    await screenshot(page, 'console-token');
    await page.keyboard.press('Escape'); // the token is needed to go on: Escape does not close it
    expect(await page.isVisible('#token-dialog')).toBe(true);
    await page.fill('#token-input', 'wrong');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => (document.getElementById('token-error')?.textContent ?? '').includes('not right'));
    await page.fill('#token-input', TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForSelector('main table caption');
    expect(await page.textContent('main caption')).toContain('2 series');
    await page.reload();
    await page.waitForSelector('main table caption');
    expect(await page.isVisible('#token-dialog')).toBe(false);
  });

  it('logged no console errors or warnings on any page', () => {
    expect(errors).toEqual([]);
  });
});
