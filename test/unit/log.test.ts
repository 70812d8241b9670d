import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { smtpServerLogger } from '../../src/log.js';

describe("smtp-server logger adapter", () => {
  it('keeps the transcript text that pino would drop, with the metadata beside it', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    });
    const log = smtpServerLogger(pino({ level: 'debug' }, sink));
    log.info({ tnx: 'client', cid: 'abc' }, 'C: %s', 'MAIL FROM:<a@b.example>');
    log.error({ tnx: 'error' }, '[%s] %s', 'abc', 'socket closed');
    expect(lines[0]).toMatchObject({ level: 20, msg: 'C: MAIL FROM:<a@b.example>', smtp: { tnx: 'client', cid: 'abc' } });
    expect(lines[1]).toMatchObject({ level: 50, msg: '[abc] socket closed', smtp: { tnx: 'error' } });
  });

  it('does not format what the level filters out', () => {
    let calls = 0;
    const sink = new Writable({ write: (_c, _e, cb) => { calls++; cb(); } });
    const log = smtpServerLogger(pino({ level: 'warn' }, sink));
    log.info({ tnx: 'client' }, 'C: %s', 'EHLO x');
    log.debug('S: %s', '250 ok');
    expect(calls).toBe(0);
  });
});
