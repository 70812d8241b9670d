import { describe, expect, it } from 'vitest';
import { advertisedExtensions } from '../../../src/smtp/extensions.js';

const LINES = ['gw.test Nice to meet you, [127.0.0.1]', 'PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'SIZE 26214400', 'STARTTLS'];

describe('advertisedExtensions', () => {
  it('offers 8BITMIME and SMTPUTF8 only when the backends do, and no SIZE above theirs', () => {
    expect(advertisedExtensions(LINES, { eightBitMime: true, smtpUtf8: true, maxSize: 0 })).toEqual(LINES);
    expect(advertisedExtensions(LINES, { eightBitMime: false, smtpUtf8: false, maxSize: 10_240_000 })).toEqual([
      LINES[0],
      'PIPELINING',
      'ENHANCEDSTATUSCODES',
      'SIZE 10240000',
      'STARTTLS',
    ]);
    // our own limit is the smaller one: it stays
    expect(advertisedExtensions(LINES, { eightBitMime: true, smtpUtf8: false, maxSize: 50_000_000 })).toEqual([LINES[0], 'PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES', 'SIZE 26214400', 'STARTTLS']);
  });

  it('offers neither before a backend was reached', () => {
    expect(advertisedExtensions(LINES, undefined)).toEqual([LINES[0], 'PIPELINING', 'ENHANCEDSTATUSCODES', 'SIZE 26214400', 'STARTTLS']);
  });

  it('leaves the greeting line alone, whatever it says', () => {
    expect(advertisedExtensions(['8BITMIME greets you', 'SMTPUTF8'], undefined)).toEqual(['8BITMIME greets you']);
  });
});
