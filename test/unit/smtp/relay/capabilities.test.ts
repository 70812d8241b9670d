import { describe, expect, it } from 'vitest';
import { capabilitiesOf, intersect, mailRefusal, needsUtf8, rcptRefusal, UNLIMITED } from '../../../../src/smtp/relay/capabilities.js';

const NONE = { eightBitMime: false, smtpUtf8: false, maxSize: 1000 };

describe('capabilities', () => {
  it('are read from an EHLO reply', () => {
    expect(capabilitiesOf(new Map([['8BITMIME', ''], ['SMTPUTF8', ''], ['SIZE', '10240000']]))).toEqual({ eightBitMime: true, smtpUtf8: true, maxSize: 10_240_000 });
    // SIZE without a number (or 0) announces no limit
    expect(capabilitiesOf(new Map([['SIZE', '']]))).toEqual({ eightBitMime: false, smtpUtf8: false, maxSize: 0 });
    expect(capabilitiesOf(new Map([['SIZE', '0']])).maxSize).toBe(0);
    expect(capabilitiesOf(new Map())).toEqual({ eightBitMime: false, smtpUtf8: false, maxSize: 0 });
  });

  it('of several backends: what all offer, the smallest limit', () => {
    expect(intersect([])).toBeUndefined();
    expect(intersect([UNLIMITED, { eightBitMime: true, smtpUtf8: false, maxSize: 5000 }, { eightBitMime: true, smtpUtf8: true, maxSize: 3000 }])).toEqual({
      eightBitMime: true,
      smtpUtf8: false,
      maxSize: 3000,
    });
  });

  it('refuse a MAIL the backend cannot take as sent, never drop a parameter', () => {
    expect(mailRefusal('a@example.org', {}, NONE)).toBeUndefined();
    expect(mailRefusal('a@example.org', { body: '7BIT', size: 1000 }, NONE)).toBeUndefined();
    expect(mailRefusal('a@example.org', { smtputf8: true, body: '8BITMIME' }, NONE)).toMatchObject({ code: 553, enhanced: '5.6.7' });
    expect(mailRefusal('jörg@exämple.test', {}, NONE)).toMatchObject({ code: 553, enhanced: '5.6.7' });
    expect(mailRefusal('a@example.org', { body: '8BITMIME' }, NONE)).toMatchObject({ code: 554, enhanced: '5.6.3' });
    expect(mailRefusal('a@example.org', { size: 1001 }, NONE)).toMatchObject({ code: 552, enhanced: '5.3.4' });
    expect(mailRefusal('jörg@exämple.test', { smtputf8: true, body: '8BITMIME', size: 10 ** 9 }, UNLIMITED)).toBeUndefined();
  });

  it('refuse a UTF-8 recipient for a backend without SMTPUTF8', () => {
    expect(needsUtf8('empfänger@example.net')).toBe(true);
    expect(needsUtf8('rcpt@example.net')).toBe(false);
    expect(rcptRefusal('empfänger@example.net', NONE)).toMatchObject({ code: 553, enhanced: '5.6.7' });
    expect(rcptRefusal('empfänger@example.net', UNLIMITED)).toBeUndefined();
    expect(rcptRefusal('rcpt@example.net', NONE)).toBeUndefined();
  });
});
