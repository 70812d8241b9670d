/** The `auditgate` command as an operator runs it: a real process, signals, config files. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SmtpTestClient } from '../helpers/smtp.js';
import { Proc } from '../helpers/process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli.js');

function configText(dir: string, above: number): string {
  return `server:
  hostname: cli.test
  listen: ["127.0.0.1:0"]
relay:
  url: dir:${join(dir, 'mail')}
state_dir: ${join(dir, 'state')}
log_dir: ${join(dir, 'log')}
admin: { enabled: false }
series:
  conn: { type: cidr, interval: 1h, windows: 2 }
record:
  - { on: connect, series: conn }
policies:
  - { name: per-ip, on: connect, series: conn, mask: 32, windows: [0, 1], above: ${above}, action: tempfail }
`;
}

let running: Proc | undefined;
afterEach(() => {
  running?.child.kill('SIGKILL');
  running = undefined;
});

describe('auditgate serve', () => {
  it('reloads on SIGHUP without dropping sessions, refuses an invalid config, drains on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-cli-'));
    const file = join(dir, 'auditgate.yaml');
    writeFileSync(file, configText(dir, 1));
    const p = new Proc(spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    running = p;
    const up = await p.waitFor((l) => l.msg === 'auditgate listening');
    const port = (up.listen as Array<{ port: number }>)[0]!.port;

    const first = await SmtpTestClient.connect(port);
    expect(first.greeting.code).toBe(220);
    expect((await SmtpTestClient.connect(port)).greeting.code).toBe(421);

    writeFileSync(file, configText(dir, 100));
    p.child.kill('SIGHUP');
    await p.waitFor((l) => l.msg === 'configuration reloaded');
    const after = await SmtpTestClient.connect(port);
    expect(after.greeting.code).toBe(220);
    // the session opened before the reload still completes a transaction
    expect((await first.cmd('EHLO still.here')).code).toBe(250);
    expect((await first.cmd('MAIL FROM:<a@b.example>')).code).toBe(250);
    expect((await first.cmd('RCPT TO:<c@d.example>')).code).toBe(250);
    expect((await first.data('Subject: kept\r\n\r\nbody\r\n')).code).toBe(250);
    expect(readdirSync(join(dir, 'mail')).filter((f) => f.endsWith('.eml')).length).toBe(1);

    writeFileSync(file, configText(dir, 100).replace('windows: [0, 1]', 'windows: [0, 9]'));
    p.child.kill('SIGHUP');
    const refused = await p.waitFor((l) => String(l.msg).startsWith('reload refused'));
    expect(String(refused.err)).toMatch(/auditgate\.yaml:\d+:\d+ policies\[0\]\.windows/);
    const still = await SmtpTestClient.connect(port);
    expect(still.greeting.code).toBe(220);

    p.child.kill('SIGTERM');
    await first.cmd('QUIT');
    after.close();
    still.close();
    expect(await p.exit).toBe(0);
    await p.waitFor((l) => l.msg === 'auditgate stopped');
  });

  it('refuses to start on an invalid config, naming file, line and key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, configText(dir, 5).replace('mask: 32', 'mask: 40'));
    const r = spawnSync(process.execPath, [CLI, 'serve', '--config', file], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad\.yaml:14:\d+ policies\[0\]\.mask: mask 40 is out of range 0\.\.32/);
    const c = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8', timeout: 10_000 });
    expect(c.status).toBe(2);
    const ok = spawnSync(process.execPath, [CLI, 'check-config', join(ROOT, 'config/auditgate.yaml')], { encoding: 'utf8', timeout: 10_000 });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/valid/);
  });
});
