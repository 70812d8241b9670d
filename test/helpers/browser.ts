/**
 * A real headless Chromium for tests: Debian's `chromium` package driven by playwright-core
 * (no browser download). Each launch gets a fresh profile directory, removed on close.
 *
 *   const chromium = findChromium();
 *   describe.skipIf(skipWithoutChromium(chromium))('…', () => {
 *     beforeAll(async () => (session = await launchChromium()));
 *     …
 *   });
 *
 * Without the executable the suite is skipped with a loud banner on a developer's machine, and
 * fails in CI (`CI` set): .ci/run installs the package, so a missing browser there is a bug.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Where screenshots go (git-ignored). */
export const ARTIFACTS_DIR = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium'];

const candidates = (env: NodeJS.ProcessEnv): string[] => (env.AUDITGATE_CHROMIUM ? [env.AUDITGATE_CHROMIUM] : CANDIDATES);

/** The chromium executable: $AUDITGATE_CHROMIUM, else the Debian paths; undefined when absent. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return candidates(env).find((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * True when a browser suite must be skipped: no chromium and not in CI (prints a banner). In CI
 * it returns false, so the suite runs and `launchChromium` fails with the reason.
 */
export function skipWithoutChromium(executable: string | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (executable !== undefined || env.CI) return false;
  const line = '!'.repeat(78);
  console.warn(
    `\n${line}\n!! SKIPPED: the real-browser tests need chromium (apt-get install -y chromium,\n` +
      `!! or AUDITGATE_CHROMIUM=/path/to/chrome). CI installs it and fails without it.\n${line}\n`,
  );
  return true;
}

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh user-data-dir; `args` are added to the standard flags. */
export async function launchChromium(opts: { args?: string[]; executable?: string | undefined } = {}): Promise<BrowserSession> {
  const executablePath = opts.executable ?? findChromium();
  if (executablePath === undefined) {
    throw new Error(`chromium is not installed (looked for ${candidates(process.env).join(', ')}; .ci/run installs the Debian package "chromium")`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-proxy-server', ...(opts.args ?? [])],
      timeout: 60_000,
    });
  } catch (e) {
    fs.rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Saves a full-page screenshot as test-artifacts/NAME.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
