/**
 * Series state, series logs and the dir relay's mail name clients: files are 0640 (0600 under a
 * 0o077 umask), directories 0750 (0700), never readable by others. process.umask is per process
 * and vitest runs each file in its own fork (pool: forks), so setting it here is safe; it is
 * restored after each test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/series/clock.js';
import type { CidrSeries, StringSeries } from '../../../src/series/index.js';
import { SeriesRegistry } from '../../../src/series/registry.js';
import { SeriesPersister } from '../../../src/history/persister.js';
import { SeriesLogWriter } from '../../../src/history/log-writer.js';
import { createRelay } from '../../../src/smtp/relay/create.js';

const T0 = Date.UTC(2026, 10, 20, 10, 2, 0);
const silent = pino({ level: 'silent' });

let dir: string;
let savedUmask: number;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-modes-'));
  savedUmask = process.umask();
});
afterEach(() => {
  process.umask(savedUmask);
  fs.rmSync(dir, { recursive: true, force: true });
});

const mode = (p: string): number => fs.statSync(p).mode & 0o777;

/** Every path from `below` (exclusive) down to `p` (inclusive). */
function chain(below: string, p: string): string[] {
  const out: string[] = [];
  for (let q = p; q !== below && q.startsWith(below); q = path.dirname(q)) out.unshift(q);
  return out;
}

async function writeEverything(): Promise<{ files: string[]; dirs: string[] }> {
  const clock = new ManualClock(T0);
  const registry = new SeriesRegistry(clock);
  (registry.define({ name: 'connections', type: 'cidr', interval: 300, windows: 6, options: { persist: true, serialize: true } }) as CidrSeries).add('192.0.2.1', 3);
  (registry.define({ name: 'auth_fail', type: 'string', interval: 300, windows: 6, options: { persist: true } }) as StringSeries).add('alice', 2);

  const stateDir = path.join(dir, 'var', 'state');
  const persister = new SeriesPersister({ registry, stateDir, intervalSec: 5, logger: silent, clock, seriesNames: () => ['connections', 'auth_fail'] });
  await persister.saveAll();

  const logDir = path.join(dir, 'var', 'series-log');
  const writer = new SeriesLogWriter({ registry, logDir, retentionSec: 86_400, logger: silent, clock, seriesNames: () => ['connections'] });
  writer.tick();
  clock.advanceSeconds(300);
  writer.tick();
  await writer.stop();
  const dayFile = writer.fileFor('connections', T0 - (T0 % 300_000));

  const mailDir = path.join(dir, 'var', 'mail');
  const relay = createRelay({ kind: 'dir', dir: mailDir, hostname: 'gw.test' });
  const tx = await relay.begin({ clientAddress: '192.0.2.1' });
  await tx.mailFrom('a@client.test');
  await tx.rcptTo('b@backend.test');
  expect((await tx.data(Readable.from([Buffer.from('Subject: hi\r\n\r\nbody\r\n')]), '')).code).toBe(250);
  await tx.release();
  await relay.close();
  const mail = fs.readdirSync(mailDir).map((f) => path.join(mailDir, f));
  expect(mail).toHaveLength(1);

  return {
    files: [persister.fileFor('connections'), persister.fileFor('auth_fail'), dayFile, ...mail],
    dirs: [...new Set([...chain(dir, stateDir), ...chain(dir, path.dirname(dayFile)), ...chain(dir, mailDir)])],
  };
}

describe('file modes', () => {
  it('umask 0o022: files 0640, directories 0750', async () => {
    process.umask(0o022);
    const { files, dirs } = await writeEverything();
    expect(dirs).toHaveLength(5); // var, var/state, var/series-log, its series directory, var/mail
    for (const f of files) expect(mode(f).toString(8), f).toBe('640');
    for (const d of dirs) expect(mode(d).toString(8), d).toBe('750');
  });

  it('umask 0o077: nothing for the group or others', async () => {
    process.umask(0o077);
    const { files, dirs } = await writeEverything();
    for (const f of files) expect(mode(f).toString(8), f).toBe('600');
    for (const d of dirs) expect(mode(d).toString(8), d).toBe('700');
  });
});
