/** Persistence and serialized history wired through the gateway itself. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/series/clock.js';
import { queryHistory } from '../../src/history/log-query.js';
import { proxyV1, SmtpTestClient, startBackend, startTestGateway } from '../helpers/smtp.js';

const T0 = 1_800_000_000_000;

describe('gateway persistence', () => {
  it('keeps persisted counts across a restart and serializes closed windows for history', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-gwp-'));
    const backend = await startBackend();
    const clock = new ManualClock(T0);
    const body = `state_dir: ${join(dir, 'state')}
log_dir: ${join(dir, 'log')}
series:
  conn: { type: cidr, interval: 60, windows: 4, persist: true, serialize: true }
  plain: { type: cidr, interval: 60, windows: 4 }
record:
  - { on: connect, series: [conn, plain] }
`;
    const opts = { relay: `smtp://127.0.0.1:${backend.port}`, body, clock };
    try {
      const gw1 = await startTestGateway(opts);
      for (const ip of ['192.0.2.1', '192.0.2.1', '192.0.2.9', '198.51.100.4']) {
        const c = await SmtpTestClient.connect(gw1.port, { preface: proxyV1(ip) });
        expect(c.greeting.code).toBe(220);
        c.close();
      }
      await gw1.close();

      clock.advanceSeconds(60); // one window passes while the gateway is down
      const gw2 = await startTestGateway(opts);
      try {
        expect(await gw2.gateway.store.count('conn', '192.0.2.1', 1)).toBe(2);
        expect(await gw2.gateway.store.count('conn', '192.0.2.0/24', 0, 3)).toBe(3);
        expect(await gw2.gateway.store.count('conn', '192.0.2.1', 0)).toBe(0);
        expect(await gw2.gateway.store.count('plain', '0.0.0.0/0', 0, 3)).toBe(0); // not persisted
        for (const ip of ['203.0.113.5', '203.0.113.6', '192.0.2.1']) {
          const c = await SmtpTestClient.connect(gw2.port, { preface: proxyV1(ip) });
          c.close();
        }
        clock.advanceSeconds(60); // that window closes: it goes to the log
        gw2.gateway.logWriter!.tick();
        await gw2.gateway.logWriter!.flush();
        const top = await queryHistory({ logDir: join(dir, 'log'), series: ['conn'], from: new Date(T0 - 3_600_000), to: new Date(T0 + 3_600_000), groupBy: 24 });
        // the first run's window closed while the gateway was down: logged at restore; the
        // second run's window closed while running: logged by the listener
        expect(top).toEqual([
          { key: '192.0.2.0/24', count: 4 },
          { key: '203.0.113.0/24', count: 2 },
          { key: '198.51.100.0/24', count: 1 },
        ]);
      } finally {
        await gw2.close();
      }
    } finally {
      await backend.close();
    }
  });
});
