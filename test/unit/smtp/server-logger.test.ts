import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { smtpServerLogger } from '../../../src/smtp/server-logger.js';

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
    log.error({ tnx: 'error' }, '[%s] %s', 'abc', 'read ECONNRESET');
    log.error({ tnx: 'listen' }, 'cannot %s', 'listen');
    expect(lines[0]).toMatchObject({ level: 20, msg: 'C: MAIL FROM:<a@b.example>', smtp: { tnx: 'client', cid: 'abc' } });
    // a connection's socket error is a client leaving, logged by the front: debug here
    expect(lines[1]).toMatchObject({ level: 20, msg: '[abc] read ECONNRESET', smtp: { tnx: 'error' } });
    expect(lines[2]).toMatchObject({ level: 50, msg: 'cannot listen', smtp: { tnx: 'listen' } });
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
