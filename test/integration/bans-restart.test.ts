/**
 * Bans survive a restart of the real `auditgate serve` process: a drain on SIGTERM, and a SIGKILL
 * long before the next periodic save of persisted series (persist_interval: 1h) — a ban is on disk
 * within a second of being issued. Expired bans are dropped at load.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Proc } from '../helpers/process.js';
import { proxyV1, SmtpTestClient } from '../helpers/smtp.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = path.join(ROOT, 'dist/src/cli.js');

function configText(dir: string): string {
  return `server:
  hostname: restart.test
  listen: ["127.0.0.1:0"]
  proxy_protocol: [127.0.0.0/8]
relay:
  url: dir:${path.join(dir, 'mail')}
state_dir: ${path.join(dir, 'state')}
log_dir: ${path.join(dir, 'log')}
persist_interval: 1h
admin: { listen: "127.0.0.1:0" }
series:
  conn: { type: cidr, interval: 1h, windows: 2 }
record:
  - { on: connect, series: conn }
policies:
  - { name: flood, on: connect, series: conn, mask: 24, windows: [0, 1], above: 2, action: tempfail, ban: 1h }
`;
}

let running: Proc | undefined;
afterEach(() => {
  running?.child.kill('SIGKILL');
  running = undefined;
});

async function start(file: string): Promise<{ p: Proc; smtp: number; admin: string }> {
  const p = new Proc(spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  running = p;
  const up = await p.waitFor((l) => l.msg === 'auditgate listening');
  const admin = up.admin as { port: number };
  return { p, smtp: (up.listen as Array<{ port: number }>)[0]!.port, admin: `http://127.0.0.1:${admin.port}` };
}

async function greeting(port: number, ip: string): Promise<string> {
  const c = await SmtpTestClient.connect(port, { preface: proxyV1(ip) });
  c.close();
  return `${c.greeting.code} ${c.greeting.text}`;
}

async function bans(admin: string): Promise<string[]> {
  const b = (await (await fetch(`${admin}/bans`)).json()) as { bans: Array<{ prefix: string }> };
  return b.bans.map((x) => x.prefix).sort();
}

async function onDisk(file: string, prefix: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(`"prefix":"${prefix}"`))) {
    if (Date.now() > deadline) throw new Error(`${prefix} not written to ${file} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('bans across restarts of auditgate serve', () => {
  it('survive SIGTERM and SIGKILL, and are enforced again at once', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-bans-restart-'));
    const file = path.join(dir, 'auditgate.yaml');
    const banFile = path.join(dir, 'state', 'bans.state');
    fs.writeFileSync(file, configText(dir));
    try {
      let gw = await start(file);
      // a policy ban (the third connection from 192.0.2.0/24) and one added by hand
      for (const n of [1, 2, 3]) await greeting(gw.smtp, `192.0.2.${n}`);
      expect(await greeting(gw.smtp, '192.0.2.50')).toMatch(/^421 4\.7\.0 Your network 192\.0\.2\.0\/24 is banned/);
      const added = await fetch(`${gw.admin}/bans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prefix: '2001:db8:7::/48', for: '2h' }) });
      expect(added.status).toBe(200);

      gw.p.child.kill('SIGTERM');
      expect(await gw.p.exit).toBe(0);
      gw = await start(file);
      expect(await bans(gw.admin)).toEqual(['192.0.2.0/24', '2001:db8:7::/48']);
      expect(await greeting(gw.smtp, '192.0.2.77')).toMatch(/^421 .*192\.0\.2\.0\/24 is banned \(try again in 60m\)/);
      expect(await greeting(gw.smtp, '2001:db8:7:1::1')).toMatch(/^421 .*2001:db8:7::\/48 is banned/);

      // a new ban, then SIGKILL as soon as it is on disk: long before the next periodic save (1h)
      await fetch(`${gw.admin}/bans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prefix: '198.51.100.7', for: '1h' }) });
      const lifted = await fetch(`${gw.admin}/bans?prefix=2001:db8:7::/48`, { method: 'DELETE' });
      expect(lifted.status).toBe(200);
      await onDisk(banFile, '198.51.100.7/32');
      expect(fs.readFileSync(banFile, 'utf8')).not.toContain('2001:db8:7::/48');
      gw.p.child.kill('SIGKILL');
      await gw.p.exit;
      gw = await start(file);
      expect(await bans(gw.admin)).toEqual(['192.0.2.0/24', '198.51.100.7/32']);
      expect(await greeting(gw.smtp, '198.51.100.7')).toMatch(/^421 .*198\.51\.100\.7\/32 is banned/);
      expect(await greeting(gw.smtp, '2001:db8:7:1::1')).toMatch(/^220 /); // the lift survived too
      expect(fs.readdirSync(path.join(dir, 'state')).filter((f) => f.startsWith('bans'))).toEqual(['bans.state']);
      gw.p.child.kill('SIGTERM');
      expect(await gw.p.exit).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
