/**
 * Listeners of the MTA fronts: unix-domain sockets (mode 0660, a stale socket file replaced, a
 * live one or a non-socket refused with the key and the path, the file removed at close), both
 * fronts in one process with the SMTP proxy off, and a reload that changes their listen
 * addresses refused.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MilterClient, milterSession, PolicyClient, policyRequest } from '../../bench/mta-client.js';
import { parseConfigText } from '../../src/config/load.js';
import { ListenError } from '../../src/errors.js';
import { startFronts } from '../helpers/fronts.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-mta-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A socket file nobody answers on, as a killed process leaves it (a second name for a socket that was then closed). */
async function staleSocket(at: string): Promise<void> {
  const live = path.join(path.dirname(at), 'live.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(live, r));
  fs.linkSync(live, at);
  await new Promise<void>((r) => server.close(() => r()));
  expect(fs.lstatSync(at).isSocket()).toBe(true);
}

describe('MTA fronts on unix-domain sockets', () => {
  it('listen with mode 0660, replace a stale socket file, serve, and remove the file at close', async () => {
    const dir = tempDir();
    const milter = path.join(dir, 'milter.sock');
    const policy = path.join(dir, 'policy.sock');
    await staleSocket(milter);
    const gw = await startFronts({ milter: `{ listen: ["unix:${milter}"] }`, policy: `{ listen: ["unix:${policy}"] }`, body: '' });
    try {
      expect(gw.gateway.milterAddresses()).toEqual([{ path: milter }]);
      for (const p of [milter, policy]) expect(fs.statSync(p).mode & 0o777).toBe(0o660);
      const m = await MilterClient.connect({ path: milter });
      await m.negotiate();
      expect((await milterSession(m, { client: '192.0.2.1' })).map((r) => r.command)).toEqual(['c', 'c', 'c', 'c', 'c', 'c']);
      m.close();
      const p = await PolicyClient.connect({ path: policy });
      expect(await p.ask(policyRequest('RCPT', '192.0.2.1'))).toBe('DUNNO');
      p.close();
    } finally {
      await gw.close();
    }
    expect(fs.existsSync(milter)).toBe(false);
    expect(fs.existsSync(policy)).toBe(false);
  });

  it('refuses a socket another process answers on, and a path that is no socket, naming key and path', async () => {
    const dir = tempDir();
    const taken = path.join(dir, 'taken.sock');
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(taken, r));
    cleanups.push(() => new Promise((r) => holder.close(r)));
    await expect(startFronts({ milter: `{ listen: ["unix:${taken}"] }`, body: '' })).rejects.toThrow(
      new ListenError(`milter.listen unix:${taken}: address already in use (a process answers on this socket)`),
    );
    expect(fs.lstatSync(taken).isSocket()).toBe(true); // left alone

    const file = path.join(dir, 'file.sock');
    fs.writeFileSync(file, 'not a socket');
    await expect(startFronts({ policy: `{ listen: ["unix:${file}"] }`, body: '' })).rejects.toThrow(`policy_service.listen unix:${file}: the path exists and is not a socket`);
    expect(fs.readFileSync(file, 'utf8')).toBe('not a socket');

    await expect(startFronts({ milter: `{ listen: ["unix:${path.join(dir, 'no/such/dir.sock')}"] }`, body: '' })).rejects.toThrow(': no such directory');
  });

  it('a reload applies policies to the fronts but refuses a change of their listen addresses', async () => {
    const gw = await startFronts({ milter: true, policy: true, body: 'policies: []\n' });
    cleanups.push(() => gw.close());
    const text = (milter: string, policies: string) => `server: { hostname: gw.test, listen: [] }
milter: ${milter}
policy_service: { listen: ["127.0.0.1:0"], idle_timeout: 30s }
admin: { enabled: false }
policies: ${policies}
`;
    const reject = '[{ name: no, on: rcpt, action: reject }]';
    await expect(gw.gateway.reload(parseConfigText(text('{ listen: ["127.0.0.1:1"] }', '[]'), 'test-gateway.yaml'))).rejects.toThrow('milter.listen changed, which needs a restart');
    await gw.gateway.reload(parseConfigText(text('{ listen: ["127.0.0.1:0"], idle_timeout: 30s }', reject), 'test-gateway.yaml'));
    const p = await PolicyClient.connect({ port: gw.policyPort });
    expect(await p.ask(policyRequest('RCPT', '192.0.2.1'))).toMatch(/^550 5\.7\.1 Recipient refused by policy/);
    p.close();
    const m = await MilterClient.connect({ port: gw.milterPort });
    await m.negotiate();
    expect((await milterSession(m, { client: '192.0.2.1' })).map((r) => r.command)).toEqual(['c', 'c', 'c', 'y']);
    m.close();
  });
});
