import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createRelay } from '../../src/smtp/relay/create.js';
import { cleanups, msg, expectRelayError4xx, PREFIX } from './relay-helpers.js';

describe('dir relay', () => {
  it('writes a complete .eml atomically and leaves no temp files', async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'auditgate-relay-'));
    cleanups.push(() => rm(base, { recursive: true, force: true }));
    const dir = path.join(base, 'var', 'mail'); // does not exist yet
    const relay = createRelay({ kind: 'dir', dir, hostname: 'gw.test' });
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    expect((await tx.mailFrom('a@client.test')).code).toBe(250);
    expect((await tx.rcptTo('b@backend.test')).code).toBe(250);
    expect((await tx.rcptTo('c@backend.test')).code).toBe(250);
    const reply = await tx.data(msg('Subject: hi\n\n.dot line\r', '\nbare\rend\r\n'), PREFIX);
    expect(reply.code).toBe(250);
    await tx.release();

    const files = await readdir(dir);
    expect(files).toHaveLength(1);
    const name = files[0] as string;
    expect(name).toMatch(/^\d+-[0-9a-f]{16}\.eml$/);
    expect(reply.message).toContain(name);
    const text = await readFile(path.join(dir, name), 'utf8');
    expect(text).toBe(
      'X-Envelope-From: <a@client.test>\r\nX-Envelope-To: <b@backend.test>\r\nX-Envelope-To: <c@backend.test>\r\n' +
        PREFIX +
        'Subject: hi\r\n\r\n.dot line\r\nbare\r\nend\r\n',
    );
    expect(relay.stats()).toMatchObject({ kind: 'dir', messages: 1, active: 0 });
  });

  it('a message whose stream fails leaves no file behind and gives a 4xx', async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'auditgate-relay-'));
    cleanups.push(() => rm(base, { recursive: true, force: true }));
    const relay = createRelay({ kind: 'dir', dir: base, hostname: 'gw.test' });
    const tx = await relay.begin({ clientAddress: '192.0.2.1' });
    await tx.mailFrom('a@client.test');
    await tx.rcptTo('b@backend.test');
    const stream = new PassThrough();
    const result = tx.data(stream, PREFIX);
    stream.write('Subject: half\r\n\r\n');
    setTimeout(() => stream.destroy(), 30);
    await expectRelayError4xx(result);
    tx.abort();
    expect(await readdir(base)).toEqual([]);
  });
});
