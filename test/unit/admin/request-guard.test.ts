/** The admin listener's request-origin checks (src/admin/request-guard.ts): Host, cross-site, body type. */
import { describe, expect, it } from 'vitest';
import { checkContentType, checkCrossSite, checkHost, guardRequest, hasBody, parseHostHeader, type HostPolicy } from '../../../src/admin/request-guard.js';

const LOOPBACK: HostPolicy = { listenHost: '127.0.0.1', hosts: [] };
const code = (r: { code: string } | null): string | null => r?.code ?? null;

describe('parseHostHeader', () => {
  it('parses names, IPv4 and bracketed IPv6, with or without a port', () => {
    expect(parseHostHeader('127.0.0.1')).toEqual({ host: '127.0.0.1', ip: true });
    expect(parseHostHeader('127.0.0.1:8025')).toEqual({ host: '127.0.0.1', port: 8025, ip: true });
    expect(parseHostHeader('[::1]:8025')).toEqual({ host: '::1', port: 8025, ip: true });
    expect(parseHostHeader('[2001:DB8::1]')).toEqual({ host: '2001:db8::1', ip: true });
    expect(parseHostHeader('LocalHost:8025')).toEqual({ host: 'localhost', port: 8025, ip: false });
    expect(parseHostHeader('gw.example.net.')).toEqual({ host: 'gw.example.net', ip: false });
  });

  it('returns null for garbage', () => {
    for (const bad of ['', ':8025', '::1', '[::1', '[fe80::1%eth0]', '[192.0.2.1]', '127.0.0.1:99999', '127.0.0.1:', '127.0.0.1:80:80', '999.1.1.1', '1.2.3', 'a b', 'evil.example/x', 'user@127.0.0.1', '*.example', '-x.example', 'a..b']) {
      expect(parseHostHeader(bad), bad).toBeNull();
    }
  });
});

describe('checkHost', () => {
  it('accepts IP literals: an IP Host cannot be a rebinding attack', () => {
    for (const h of ['127.0.0.1', '127.0.0.1:8025', '192.0.2.1:80', '[::1]:8025', '[::1]', '[2001:db8::1]:8025']) {
      expect(checkHost(h, LOOPBACK), h).toBeNull();
    }
  });

  it('accepts localhost (any port, any case) only when the listener is on loopback', () => {
    for (const h of ['localhost', 'localhost:8025', 'LOCALHOST', 'localhost.:9']) expect(checkHost(h, LOOPBACK), h).toBeNull();
    expect(checkHost('localhost:8025', { listenHost: '::1', hosts: [] })).toBeNull();
    expect(checkHost('localhost:8025', { listenHost: 'localhost', hosts: [] })).toBeNull();
    expect(code(checkHost('localhost:8025', { listenHost: '0.0.0.0', hosts: [] }))).toBe('AG_ADMIN_FORBIDDEN_HOST');
    expect(code(checkHost('localhost:8025', { listenHost: '192.0.2.10', hosts: [] }))).toBe('AG_ADMIN_FORBIDDEN_HOST');
    expect(checkHost('localhost:8025', { listenHost: '0.0.0.0', hosts: ['localhost'] })).toBeNull();
  });

  it('refuses any other name: 421 AG_ADMIN_FORBIDDEN_HOST, saying what to do', () => {
    const r = checkHost('evil.example:8025', LOOPBACK);
    expect(r).toMatchObject({ status: 421, code: 'AG_ADMIN_FORBIDDEN_HOST' });
    expect(r!.message).toMatch(/"evil\.example:8025".*IP address or localhost.*admin\.hosts/);
    for (const h of ['rebind.evil.example', 'localhost.evil.example', 'foo.localhost', '127.0.0.1.nip.io:8025', 'garbage host', '[::1', '']) {
      expect(code(checkHost(h, LOOPBACK)), h).toBe('AG_ADMIN_FORBIDDEN_HOST');
    }
  });

  it('accepts configured names (case-insensitive, any port) and the listener\'s own name', () => {
    const policy: HostPolicy = { listenHost: '0.0.0.0', hosts: ['gw1.example.net', 'admin.internal'] };
    for (const h of ['gw1.example.net', 'GW1.Example.NET:8025', 'admin.internal:443', 'gw1.example.net.']) expect(checkHost(h, policy), h).toBeNull();
    expect(code(checkHost('gw2.example.net', policy))).toBe('AG_ADMIN_FORBIDDEN_HOST');
    expect(code(checkHost('example.net', policy))).toBe('AG_ADMIN_FORBIDDEN_HOST');
    expect(checkHost('admin.lan:8025', { listenHost: 'admin.lan', hosts: [] })).toBeNull();
    expect(checkHost('127.0.0.1', policy)).toBeNull();
  });

  it('accepts a request without a Host header (HTTP/1.0 tools)', () => {
    expect(checkHost(undefined, LOOPBACK)).toBeNull();
  });
});

describe('checkCrossSite', () => {
  const host = '127.0.0.1:8025';

  it('accepts non-browser clients (no Origin, no Sec-Fetch-Site), typed URLs and same-origin pages', () => {
    expect(checkCrossSite({ host })).toBeNull();
    expect(checkCrossSite({})).toBeNull();
    expect(checkCrossSite({ host, secFetchSite: 'none' })).toBeNull();
    expect(checkCrossSite({ host, secFetchSite: 'same-origin' })).toBeNull();
    expect(checkCrossSite({ host, secFetchSite: 'same-origin', origin: 'http://127.0.0.1:8025' })).toBeNull();
    expect(checkCrossSite({ host, origin: 'http://127.0.0.1:8025' })).toBeNull();
    expect(checkCrossSite({ host: '[::1]:8025', origin: 'http://[::1]:8025' })).toBeNull();
    expect(checkCrossSite({ host: 'LOCALHOST:8025', origin: 'http://localhost:8025' })).toBeNull();
    // default port: the browser leaves it out of both
    expect(checkCrossSite({ host: '127.0.0.1', origin: 'http://127.0.0.1' })).toBeNull();
    expect(checkCrossSite({ host: '127.0.0.1:80', origin: 'http://127.0.0.1' })).toBeNull();
  });

  it('refuses Sec-Fetch-Site cross-site, same-site and anything unknown: 403 AG_ADMIN_CROSS_SITE', () => {
    for (const s of ['cross-site', 'same-site', 'Cross-Site', 'bogus', 'cross-site, same-origin']) {
      const r = checkCrossSite({ host, secFetchSite: s });
      expect(r, s).toMatchObject({ status: 403, code: 'AG_ADMIN_CROSS_SITE' });
    }
    // Sec-Fetch-Site wins over a matching Origin
    expect(code(checkCrossSite({ host, secFetchSite: 'cross-site', origin: 'http://127.0.0.1:8025' }))).toBe('AG_ADMIN_CROSS_SITE');
  });

  it('refuses an Origin that is not http:// + Host, Origin: null included', () => {
    for (const origin of [
      'http://evil.example',
      'http://127.0.0.2:8025',
      'http://127.0.0.1:9999',
      'http://127.0.0.1',
      'https://127.0.0.1:8025',
      'null',
      'NULL',
      'http://127.0.0.1:8025/path',
      'http://user@127.0.0.1:8025',
      'file://',
      'not a url',
      '',
    ]) {
      const r = checkCrossSite({ host, origin });
      expect(r, origin).toMatchObject({ status: 403, code: 'AG_ADMIN_CROSS_SITE' });
    }
    expect(checkCrossSite({ host, origin: 'null' })!.message).toMatch(/Origin "null"/);
    // an Origin with no Host to compare against is not same-origin
    expect(code(checkCrossSite({ origin: 'http://127.0.0.1:8025' }))).toBe('AG_ADMIN_CROSS_SITE');
  });
});

describe('checkContentType', () => {
  const body = { 'content-length': '20' };

  it('needs no Content-Type without a body', () => {
    expect(hasBody({})).toBe(false);
    expect(hasBody({ 'content-length': '0' })).toBe(false);
    expect(hasBody(body)).toBe(true);
    expect(hasBody({ 'transfer-encoding': 'chunked' })).toBe(true);
    expect(checkContentType({})).toBeNull();
    expect(checkContentType({ 'content-length': '0', 'content-type': 'text/plain' })).toBeNull();
  });

  it('accepts application/json with parameters, any case', () => {
    for (const ct of ['application/json', 'application/json; charset=utf-8', 'Application/JSON;charset=UTF-8', ' application/json ']) {
      expect(checkContentType({ ...body, 'content-type': ct }), ct).toBeNull();
    }
    expect(checkContentType({ 'transfer-encoding': 'chunked', 'content-type': 'application/json' })).toBeNull();
  });

  it('refuses every other body: 415 AG_ADMIN_CONTENT_TYPE', () => {
    for (const ct of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', 'application/json-seq', 'json', '']) {
      expect(checkContentType({ ...body, 'content-type': ct }), ct).toMatchObject({ status: 415, code: 'AG_ADMIN_CONTENT_TYPE' });
    }
    expect(checkContentType(body)).toMatchObject({ status: 415, message: expect.stringMatching(/no Content-Type/) });
    expect(code(checkContentType({ 'transfer-encoding': 'chunked', 'content-type': 'text/plain' }))).toBe('AG_ADMIN_CONTENT_TYPE');
  });
});

describe('guardRequest', () => {
  it('checks Host, then cross-site, then the body type', () => {
    const attack = { host: 'rebind.evil.example:8025', origin: 'http://evil.example', 'content-type': 'text/plain', 'content-length': '9' };
    expect(code(guardRequest(attack, LOOPBACK))).toBe('AG_ADMIN_FORBIDDEN_HOST');
    expect(code(guardRequest({ ...attack, host: '127.0.0.1:8025' }, LOOPBACK))).toBe('AG_ADMIN_CROSS_SITE');
    expect(code(guardRequest({ ...attack, host: '127.0.0.1:8025', origin: 'http://127.0.0.1:8025' }, LOOPBACK))).toBe('AG_ADMIN_CONTENT_TYPE');
    expect(guardRequest({ ...attack, host: '127.0.0.1:8025', origin: 'http://127.0.0.1:8025', 'content-type': 'application/json' }, LOOPBACK)).toBeNull();
    expect(code(guardRequest({ host: '127.0.0.1:8025', 'sec-fetch-site': ['same-origin', 'cross-site'] } as never, LOOPBACK))).toBe('AG_ADMIN_CROSS_SITE');
    expect(guardRequest({ host: '127.0.0.1:8025', 'sec-fetch-site': 'none' }, LOOPBACK)).toBeNull();
  });
});
