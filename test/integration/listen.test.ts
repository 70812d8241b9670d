/**
 * A listener that cannot bind is one clear error: the config key and the address, everything
 * already bound released, and `auditgate serve` exits 1 with that one line (no stack trace).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { ListenError } from '../../src/errors.js';
import { startGateway } from '../../src/gateway.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli.js');

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Something else holding a port on 127.0.0.1 (another gateway, another program). */
async function holdPort(): Promise<number> {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((r) => holder.close(r)));
  return (holder.address() as net.AddressInfo).port;
}

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ag-listen-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function configText(dir: string, smtp: string, admin: string | undefined): string {
  return `server:
  hostname: listen.test
  listen: ["${smtp}"]
relay:
  url: dir:${join(dir, 'mail')}
state_dir: ${join(dir, 'state')}
log_dir: ${join(dir, 'log')}
admin: ${admin === undefined ? '{ enabled: false }' : `{ listen: "${admin}" }`}
monitors: ["300,6"]
series:
  kept: { type: cidr, interval: 1h, windows: 2, persist: true }
`;
}

function serve(file: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

describe('auditgate serve with a port already taken', () => {
  it('server.listen: one line naming the key and the address, exit 1', async () => {
    const port = await holdPort();
    const dir = tempDir();
    const file = join(dir, 'auditgate.yaml');
    writeFileSync(file, configText(dir, `127.0.0.1:${port}`, undefined));
    const r = await serve(file);
    expect(r.stderr).toBe(`auditgate: server.listen 127.0.0.1:${port}: address already in use\n`);
    expect(r.code).toBe(1);
  });

  it('admin.listen: one line naming the key and the address, exit 1', async () => {
    const port = await holdPort();
    const dir = tempDir();
    const file = join(dir, 'auditgate.yaml');
    writeFileSync(file, configText(dir, '127.0.0.1:0', `127.0.0.1:${port}`));
    const r = await serve(file);
    expect(r.stderr).toBe(`auditgate: admin.listen 127.0.0.1:${port}: address already in use\n`);
    expect(r.code).toBe(1);
  });
});

describe('Gateway.start with a port already taken', () => {
  it('rejects with a ListenError (AG_LISTEN) and releases the SMTP listener it had bound', async () => {
    const adminPort = await holdPort();
    const smtpPort = await freePort();
    const dir = tempDir();
    const config = parseConfigText(configText(dir, `127.0.0.1:${smtpPort}`, `127.0.0.1:${adminPort}`), join(dir, 'auditgate.yaml'));
    const logger = pino({ level: 'silent' });
    const err = await startGateway({ config, logger }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).code).toBe('AG_LISTEN');
    expect((err as ListenError).message).toBe(`admin.listen 127.0.0.1:${adminPort}: address already in use`);

    // the SMTP port is free again: a gateway with the admin listener off starts on it
    const again = await startGateway({ config: parseConfigText(configText(dir, `127.0.0.1:${smtpPort}`, undefined), join(dir, 'auditgate.yaml')), logger });
    cleanups.push(() => again.close(0));
    expect(again.smtpAddresses()).toEqual([{ host: '127.0.0.1', port: smtpPort }]);
  });
});
