import { describe, expect, it } from 'vitest';
import { formatDuration, formatSize, parseDuration, parseSize } from '../../../src/config/duration.js';
import { formatPath } from '../../../src/config/load.js';
import { monitorSeries } from '../../../src/config/catalogue.js';
import { normalizeCidr, parseHostPort } from '../../../src/config/values.js';

describe('parseDuration / parseSize', () => {
  it('parses seconds and units', () => {
    expect(parseDuration(30)).toBe(30);
    expect(parseDuration('30')).toBe(30);
    expect(parseDuration('30s')).toBe(30);
    expect(parseDuration('5m')).toBe(300);
    expect(parseDuration('1h')).toBe(3600);
    expect(parseDuration('1d')).toBe(86_400);
    expect(parseDuration('500ms')).toBe(0.5);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('1.5s')).toBe(1.5);
  });

  it('refuses garbage with a message naming the value', () => {
    expect(() => parseDuration('5x')).toThrow(/invalid duration "5x"/);
    expect(() => parseDuration('')).toThrow(/invalid duration/);
    expect(() => parseDuration('m')).toThrow(/invalid duration/);
    expect(() => parseDuration('5m5m')).toThrow(/appears twice/);
    expect(() => parseDuration(-1)).toThrow(/invalid duration -1/);
    expect(() => parseDuration(Number.NaN)).toThrow(/invalid duration/);
  });

  it('parses sizes in binary units', () => {
    expect(parseSize('25MB')).toBe(25 * 1024 * 1024);
    expect(parseSize('10KB')).toBe(10 * 1024);
    expect(parseSize('1GB')).toBe(1024 ** 3);
    expect(parseSize('512B')).toBe(512);
    expect(parseSize('1000')).toBe(1000);
    expect(parseSize(1000)).toBe(1000);
    expect(() => parseSize('25XB')).toThrow(/invalid size "25XB"/);
    expect(() => parseSize(1.5)).toThrow(/invalid size 1.5/);
  });

  it('formats back to the shortest exact unit', () => {
    expect(formatDuration(900)).toBe('15m');
    expect(formatDuration(0.5)).toBe('500ms');
    expect(formatDuration(90)).toBe('90s');
    expect(formatDuration(604_800)).toBe('1w');
    expect(formatSize(25 * 1024 * 1024)).toBe('25MB');
    expect(formatSize(1000)).toBe('1000B');
  });
});

describe('value helpers', () => {
  it('normalizes CIDRs and bare addresses', () => {
    expect(normalizeCidr('10.0.0.0/8')).toBe('10.0.0.0/8');
    expect(normalizeCidr('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(normalizeCidr('192.0.2.7')).toBe('192.0.2.7/32');
    expect(normalizeCidr('2001:DB8:0:0::1')).toBe('2001:db8::1/128');
    expect(normalizeCidr('fd00::/8')).toBe('fd00::/8');
    expect(normalizeCidr('::ffff:192.0.2.0/120')).toBe('192.0.2.0/24');
    expect(normalizeCidr('10.0.0.0/33')).toBeNull();
    expect(normalizeCidr('10.0.0.300')).toBeNull();
    expect(normalizeCidr('0x7f000001')).toBeNull();
    expect(normalizeCidr('fe80::1%eth0')).toBeNull();
    expect(normalizeCidr('example.com')).toBeNull();
  });

  it('parses listen addresses', () => {
    expect(parseHostPort('0.0.0.0:2525')).toEqual({ host: '0.0.0.0', port: 2525 });
    expect(parseHostPort('[::]:2525')).toEqual({ host: '::', port: 2525 });
    expect(parseHostPort('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseHostPort('localhost:25')).toEqual({ host: 'localhost', port: 25 });
    expect(() => parseHostPort('127.0.0.1')).toThrow(/missing port/);
    expect(() => parseHostPort('::1')).toThrow(/brackets/);
    expect(() => parseHostPort('1.2.3.4:70000')).toThrow(/not a port number/);
  });

  it('names the built-in monitor series', () => {
    expect(monitorSeries([{ interval: 300, windows: 6, text: '300,6' }]).map((s) => `${s.name}/${s.type}`)).toEqual([
      'connections:300,6/cidr',
      'receptions:300,6/cidr',
      'rejections:300,6/cidr',
      'connections6:300,6/cidr_ipv6',
      'receptions6:300,6/cidr_ipv6',
      'rejections6:300,6/cidr_ipv6',
    ]);
  });

  it('formats key paths', () => {
    expect(formatPath(['policies', 2, 'mask'])).toBe('policies[2].mask');
    expect(formatPath(['series', 'connections:300,6', 'windows'])).toBe('series["connections:300,6"].windows');
  });
});
