/**
 * The shipped config/auditgate.yaml, listening on IPv6 (::1), with a real backend: its password
 * guessing and directory-harvest limits hold for IPv6 clients as they do for IPv4 ones.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { SmtpTestClient } from '../helpers/smtp.js';

const DEFAULT_CONFIG = fileURLToPath(new URL('../../config/auditgate.yaml', import.meta.url));
const plain = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString('base64');

describe('the default config over IPv6', () => {
  let backend: SMTPServer;
  let gateway: Gateway;
  let port: number;
  let dir: string;
  let checked = 0;

  beforeAll(async () => {
    backend = new SMTPServer({
      authOptional: true,
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onAuth(_auth, _s, cb) {
        checked++;
        cb(Object.assign(new Error('5.7.8 Invalid credentials'), { responseCode: 535 }));
      },
      onRcptTo(addr, _s, cb) {
        if (addr.address.startsWith('unknown')) return cb(Object.assign(new Error('5.1.1 No such user'), { responseCode: 550 }));
        cb();
      },
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-default-'));
    const text = fs
      .readFileSync(DEFAULT_CONFIG, 'utf8')
      .replace('listen: ["127.0.0.1:2525"]', 'listen: ["[::1]:0"]')
      .replace('# auth: { enabled: true }', 'auth: { enabled: true, allow_plaintext: true }')
      .replace('url: dir:../var/mail', `url: smtp://127.0.0.1:${(backend.server.address() as AddressInfo).port}`)
      .replace('state_dir: ../var/state', `state_dir: ${dir}/state`)
      .replace('log_dir: ../var/series-log', `log_dir: ${dir}/log`)
      .replace('dir: ../var/journal', `dir: ${dir}/journal`)
      .replace('listen: 127.0.0.1:8025', 'enabled: false');
    const config = parseConfigText(text, DEFAULT_CONFIG);
    expect(config.server.auth.enabled).toBe(true);
    expect(config.admin.listen).toBeUndefined();
    gateway = await startGateway({ config, logger: pino({ level: 'silent' }) });
    port = gateway.smtpAddresses()[0]!.port;
  });

  afterAll(async () => {
    await gateway?.close(500);
    await new Promise<void>((r) => (backend ? backend.close(() => r()) : r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('checks at most 10 wrong passwords from ::1, then refuses without asking the backend', async () => {
    const codes: number[] = [];
    for (let conn = 0; conn < 10 && codes.length < 20; conn++) {
      const c = await SmtpTestClient.connect(port, { host: '::1' });
      await c.cmd('EHLO guesser.test');
      for (let i = 0; i < 20 && codes.length < 20; i++) {
        const r = await c.cmd(`AUTH PLAIN ${plain('alice', `guess${codes.length}`)}`);
        codes.push(r.code);
        if (r.code === 421) break;
      }
      c.close();
    }
    expect(checked).toBe(10);
    expect(codes.slice(0, 10)).toEqual(Array(10).fill(535));
    expect(codes.slice(10).every((c) => c === 421)).toBe(true);
    expect(await gateway.store.count('auth_failures6', '::1/64', 0, 3)).toBe(20);
  });

  it('stops a directory harvest from an IPv6 /64 after 50 unknown recipients', async () => {
    let rejected = 0;
    let dha: string | undefined;
    for (let conn = 0; conn < 5 && !dha; conn++) {
      const c = await SmtpTestClient.connect(port, { host: '::1' });
      await c.cmd('EHLO harvester.test');
      expect((await c.cmd('MAIL FROM:<h@example.org>')).code).toBe(250);
      for (let i = 0; i < 30; i++) {
        const r = await c.cmd(`RCPT TO:<unknown${rejected}@example.net>`);
        if (r.code === 550) rejected++;
        else {
          if (r.code === 451) dha = r.text;
          break;
        }
      }
      c.close();
    }
    expect(dha).toMatch(/^4\.7\.1 too many invalid recipients/);
    // the rcpt policy sees the rejections counted so far; a rejection is counted after the
    // backend's 550, so the 51st unknown recipient still reaches the backend
    expect(rejected).toBe(51);
  });

  it('journals every stage event (the default config has the journal on), refusals with their policy', async () => {
    await gateway.journalWriter!.flush();
    const files = fs.readdirSync(`${dir}/journal`);
    expect(files).toHaveLength(1);
    const lines = fs
      .readFileSync(`${dir}/journal/${files[0]}`, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { e: string; a?: string; o?: string; y?: string });
    expect(lines.every((l) => l.a === '::1')).toBe(true);
    expect(lines.filter((l) => l.e === 'auth_fail' && l.o === 'tempfail' && l.y === 'auth-guessing6')).toHaveLength(10);
    expect(lines.filter((l) => l.e === 'rcpt' && l.o === 'tempfail' && l.y === 'dha6')).toHaveLength(1);
    expect(lines.filter((l) => l.e === 'rcpt_rejected')).toHaveLength(51);
  });
});
