/** The gateway's journal follows `journal:` across reloads: another directory, then none. */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { proxyV1, sendMail, startBackend, startTestGateway, type Backend, type TestGateway } from '../helpers/smtp.js';

const BODY = `series:
  conn: { type: cidr, interval: 1h, windows: 2 }
record:
  - { on: connect, series: conn }
policies:
  - { name: per-ip, on: connect, series: conn, mask: 32, above: 100, action: tempfail }
`;

function sessionsIn(dir: string): string[] {
  const cids = new Set<string>();
  for (const f of readdirSync(dir)) {
    for (const l of readFileSync(join(dir, f), 'utf8').split('\n')) if (l) cids.add((JSON.parse(l) as { a: string }).a);
  }
  return [...cids];
}

describe('journal across reloads', () => {
  let backend: Backend;
  let gw: TestGateway;
  const root = mkdtempSync(join(tmpdir(), 'ag-journal-reload-'));
  const config = (journal: string): ReturnType<typeof parseConfigText> =>
    parseConfigText(
      `server:
  hostname: gw.test
  listen: ["127.0.0.1:0"]
  proxy_protocol: [127.0.0.0/8]
relay: { url: "smtp://127.0.0.1:${backend.port}", timeout: 2s }
admin: { enabled: false }
${journal}
${BODY}`,
      'journal-reload.yaml',
    );

  beforeAll(async () => {
    backend = await startBackend();
    gw = await startTestGateway({ relay: `smtp://127.0.0.1:${backend.port}`, body: `journal: { dir: ${join(root, 'a')} }\n${BODY}` });
  });
  afterAll(async () => {
    await gw?.close();
    await backend?.close();
  });

  /** One session, until the gateway has closed it on its side too (its close line written). */
  async function session(client: string): Promise<void> {
    await sendMail(gw.port, { preface: proxyV1(client) });
    for (let i = 0; i < 1000 && gw.gateway.sessions.total() > 0; i++) await new Promise((r) => setTimeout(r, 5));
  }

  it('writes to the new directory after a reload, and nothing once the section is gone', async () => {
    const listen = gw.gateway.smtpAddresses()[0]!;
    await session('192.0.2.1');
    await gw.gateway.reload({ ...config(`journal: { dir: ${join(root, 'b')}, retention: 1d }`), server: gw.gateway.config.server });
    expect(gw.gateway.smtpAddresses()[0]).toEqual(listen);
    await session('2001:db8::2');
    await gw.gateway.journalWriter!.flush();
    await gw.gateway.reload({ ...config(''), server: gw.gateway.config.server });
    expect(gw.gateway.journalStats()).toBeUndefined();
    await session('192.0.2.3');
    // the old writers wrote what they held when they were replaced
    expect(sessionsIn(join(root, 'a'))).toEqual(['192.0.2.1']);
    expect(sessionsIn(join(root, 'b'))).toEqual(['2001:db8::2']);
  });
});
