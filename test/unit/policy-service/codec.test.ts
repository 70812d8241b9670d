/**
 * Postfix policy delegation codec: the README's example request, several requests on one
 * stream, fragmentation, bounds, CRLF, answers, protocol_state → stage, and fast-check
 * properties (random bytes and truncations never throw; valid streams round-trip).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PolicyProtocolError } from '../../../src/errors.js';
import { PolicyDecoder, encodeAction, encodePolicyRequest, protocolStateToStage, type PolicyRequest } from '../../../src/policy-service/codec.js';

/** The example of every attribute, from Postfix's SMTPD_POLICY_README (2.1 to 3.2 sections). */
const README_EXAMPLE = `request=smtpd_access_policy
protocol_state=RCPT
protocol_name=SMTP
helo_name=some.domain.tld
queue_id=8045F2AB23
sender=foo@bar.tld
recipient=bar@foo.tld
recipient_count=0
client_address=1.2.3.4
client_name=another.domain.tld
reverse_client_name=another.domain.tld
instance=123.456.7
sasl_method=plain
sasl_username=you
sasl_sender=
size=12345
ccert_subject=solaris9.porcupine.org
ccert_issuer=Wietse+20Venema
ccert_fingerprint=C2:9D:F4:87:71:73:73:D9:18:E7:C2:F3:C1:DA:6E:04
encryption_protocol=TLSv1/SSLv3
encryption_cipher=DHE-RSA-AES256-SHA
encryption_keysize=256
etrn_domain=
stress=
ccert_pubkey_fingerprint=68:B3:29:DA:98:93:E3:40:99:C7:D8:AD:5C:B9:C9:40
client_port=1234
policy_context=submission
server_address=10.3.2.1
server_port=54321

`;

interface Decoded {
  requests: PolicyRequest[];
  error: PolicyProtocolError | undefined;
  end: PolicyProtocolError | undefined;
  maxBuffered: number;
}

function decode(input: string | Buffer, split: (b: Buffer) => Buffer[] = (b) => [b], opts: ConstructorParameters<typeof PolicyDecoder>[0] = {}): Decoded {
  const d = new PolicyDecoder(opts);
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const requests: PolicyRequest[] = [];
  let error: PolicyProtocolError | undefined;
  let maxBuffered = 0;
  for (const part of split(bytes)) {
    const r = d.push(part);
    requests.push(...r.requests);
    error ??= r.error;
    maxBuffered = Math.max(maxBuffered, d.buffered);
  }
  return { requests, error, end: d.end(), maxBuffered };
}

const oneByOne = (b: Buffer) => [...b].map((x) => Buffer.from([x]));

function splitAt(b: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.min(c, b.length)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

describe('policy decoder', () => {
  it("decodes the README's example request into typed fields", () => {
    const { requests, error, end } = decode(README_EXAMPLE);
    expect(error).toBeUndefined();
    expect(end).toBeUndefined();
    expect(requests).toHaveLength(1);
    const r = requests[0]!;
    expect(r).toMatchObject({
      request: 'smtpd_access_policy',
      protocol_state: 'RCPT',
      protocol_name: 'SMTP',
      helo_name: 'some.domain.tld',
      queue_id: '8045F2AB23',
      sender: 'foo@bar.tld',
      recipient: 'bar@foo.tld',
      recipient_count: 0,
      client_address: '1.2.3.4',
      client_name: 'another.domain.tld',
      reverse_client_name: 'another.domain.tld',
      instance: '123.456.7',
      sasl_method: 'plain',
      sasl_username: 'you',
      sasl_sender: '',
      size: 12345,
      ccert_subject: 'solaris9.porcupine.org',
      ccert_issuer: 'Wietse+20Venema',
      encryption_keysize: 256,
      etrn_domain: '',
      stress: '',
      client_port: 1234,
      policy_context: 'submission',
      server_address: '10.3.2.1',
      server_port: 54321,
    });
    expect(r.attributes.size).toBe(29);
    expect(r.extra.size).toBe(0);
  });

  it('keeps unknown attributes; a repeated name keeps its last value; "=" inside a value is kept', () => {
    const [r] = decode('request=smtpd_access_policy\nfuture_attr=x\nsender=a@b\nsender=c@d\nclient_name=a=b\nsize=\nclient_port=12x\n\n').requests;
    expect(r!.sender).toBe('c@d');
    expect(r!.client_name).toBe('a=b');
    expect(r!.extra).toEqual(new Map([['future_attr', 'x']]));
    expect(r!.size).toBeUndefined();
    expect(r!.client_port).toBeUndefined();
    expect(r!.attributes.get('client_port')).toBe('12x');
    expect('recipient' in r!).toBe(false);
  });

  it('several requests on one stream, CRLF tolerated, one byte at a time gives the same', () => {
    const stream = `${README_EXAMPLE}request=smtpd_access_policy\r\nprotocol_state=END-OF-MESSAGE\r\nclient_address=2001:db8::7\r\n\r\n${README_EXAMPLE}`;
    const whole = decode(stream);
    expect(whole.error).toBeUndefined();
    expect(whole.requests.map((r) => r.protocol_state)).toEqual(['RCPT', 'END-OF-MESSAGE', 'RCPT']);
    expect(whole.requests[1]!.client_address).toBe('2001:db8::7');
    expect(decode(stream, oneByOne).requests).toEqual(whole.requests);
  });

  it('UTF-8 values', () => {
    expect(decode('sender=jörg@exämple.org\n\n').requests[0]!.sender).toBe('jörg@exämple.org');
  });

  const bad: Array<[string, string, string]> = [
    ['a line without "="', 'request=smtpd_access_policy\nGARBAGE\n\n', 'malformed'],
    ['an empty name', '=value\n\n', 'malformed'],
    ['an empty request', '\n', 'malformed'],
    ['a NUL', 'sender=a\0b\n\n', 'malformed'],
  ];
  it.each(bad)('%s is a typed error', (_n, input, reason) => {
    const { error } = decode(input);
    expect(error).toBeInstanceOf(PolicyProtocolError);
    expect(error!.code).toBe('AG_POLICY_PROTOCOL');
    expect(error!.reason).toBe(reason);
  });

  it('a line over 8 KiB is refused before it ends; 8 KiB exactly (with CR) is fine', () => {
    const max = `sender=${'a'.repeat(8192 - 7)}`;
    expect(decode(`${max}\r\n\n`).requests[0]!.sender).toHaveLength(8185);
    const long = decode(`sender=${'a'.repeat(9000)}`, (b) => splitAt(b, [100, 5000, 8195]));
    expect(long.error?.reason).toBe('line-too-long');
    expect(long.maxBuffered).toBeLessThanOrEqual(8193);
    expect(decode(`${max}a\n\n`).error?.reason).toBe('line-too-long');
    expect(decode(`${max}\rx\n\n`).error?.reason).toBe('line-too-long');
  });

  it('a request over 64 KiB is refused; bounds are configurable', () => {
    const lines = Array.from({ length: 100 }, (_, i) => `x${i}=${'v'.repeat(1000)}\n`).join('');
    const r = decode(`${lines}\n`, oneByOne);
    expect(r.error?.reason).toBe('request-too-large');
    expect(r.maxBuffered).toBeLessThanOrEqual(65536);
    expect(decode('a=123456\n\n', undefined, { maxRequest: 9 }).error?.reason).toBe('request-too-large');
    expect(decode('a=12345\n\n', undefined, { maxRequest: 9 }).requests).toHaveLength(1);
    expect(decode('a=12345\n\n', undefined, { maxLine: 6 }).error?.reason).toBe('line-too-long');
  });

  it('keeps requests before an error, then stays failed; a stream ending inside a request is "truncated"', () => {
    const d = new PolicyDecoder();
    const r = d.push(Buffer.from('a=1\n\nbroken\nb=2\n\n'));
    expect(r.requests).toHaveLength(1);
    expect(r.error?.reason).toBe('malformed');
    expect(d.push(Buffer.from('a=1\n\n'))).toEqual({ requests: [], error: r.error });
    expect(d.buffered).toBe(0);
    expect(decode('a=1\n').end?.reason).toBe('truncated');
    expect(decode('a=1').end?.reason).toBe('truncated');
    expect(decode('a=1\n\n').end).toBeUndefined();
  });
});

describe('policy answers', () => {
  it('encodes every kind of action', () => {
    expect(encodeAction('DUNNO').toString()).toBe('action=DUNNO\n\n');
    expect(encodeAction('OK').toString()).toBe('action=OK\n\n');
    expect(encodeAction({ code: 451, text: '4.7.1 Rate limit exceeded [ab12@gw]' }).toString()).toBe('action=451 4.7.1 Rate limit exceeded [ab12@gw]\n\n');
    expect(encodeAction({ code: 554, text: '' }).toString()).toBe('action=554\n\n');
    expect(encodeAction({ verb: 'DEFER_IF_PERMIT', text: 'Service temporarily unavailable' }).toString()).toBe('action=DEFER_IF_PERMIT Service temporarily unavailable\n\n');
    expect(encodeAction({ verb: 'REJECT' }).toString()).toBe('action=REJECT\n\n');
  });

  it('refuses a text with CR, LF or NUL, and codes outside 4xx/5xx', () => {
    for (const text of ['a\nb', 'a\rb', 'a\0b', 'a\r\n\r\naction=OK']) {
      expect(() => encodeAction({ code: 451, text })).toThrow(TypeError);
      expect(() => encodeAction({ verb: 'DEFER', text })).toThrow(TypeError);
    }
    expect(() => encodeAction({ code: 250, text: 'ok' })).toThrow(RangeError);
    expect(() => encodeAction({ code: 600, text: 'x' })).toThrow(RangeError);
  });
});

describe('protocol_state → stage', () => {
  it('maps the SMTP states and nothing else', () => {
    expect(protocolStateToStage('CONNECT')).toBe('connect');
    expect(protocolStateToStage('EHLO')).toBe('helo');
    expect(protocolStateToStage('HELO')).toBe('helo');
    expect(protocolStateToStage('MAIL')).toBe('mail');
    expect(protocolStateToStage('RCPT')).toBe('rcpt');
    expect(protocolStateToStage('DATA')).toBe('data');
    expect(protocolStateToStage('END-OF-MESSAGE')).toBe('data');
    for (const s of ['VRFY', 'ETRN', 'rcpt', '', 'toString', '__proto__', undefined]) expect(protocolStateToStage(s), String(s)).toBeUndefined();
  });
});

// ---- properties -----------------------------------------------------------------------------------

const name = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !/[=\r\n\0]/.test(s));
const value = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !/[\r\n\0]/.test(s));
const requestArb = fc.uniqueArray(fc.tuple(fc.oneof(name, fc.constantFrom('request', 'protocol_state', 'sender', 'size', 'client_port', 'client_address')), value), {
  selector: (t) => t[0],
  minLength: 1,
  maxLength: 8,
});

describe('policy decoder properties', () => {
  it('valid streams round-trip, however they are split', () => {
    fc.assert(
      fc.property(fc.array(requestArb, { maxLength: 5 }), fc.array(fc.nat({ max: 600 }), { maxLength: 8 }), (reqs, cuts) => {
        const stream = Buffer.concat(reqs.map(encodePolicyRequest));
        const r = decode(stream, (b) => splitAt(b, cuts));
        expect(r.error).toBeUndefined();
        expect(r.end).toBeUndefined();
        expect(r.requests.map((q) => q.attributes)).toEqual(reqs.map((q) => new Map(q)));
      }),
    );
  });

  it('a truncated valid stream gives the whole requests, then "truncated" at end of stream', () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 5 }), fc.double({ min: 0, max: 1, noNaN: true }), (reqs, at) => {
        const encoded = reqs.map(encodePolicyRequest);
        const stream = Buffer.concat(encoded);
        const cut = Math.floor(at * stream.length);
        const r = decode(stream.subarray(0, cut));
        expect(r.error).toBeUndefined();
        let whole = 0;
        let sum = 0;
        for (const e of encoded) {
          if (sum + e.length > cut) break;
          sum += e.length;
          whole++;
        }
        expect(r.requests).toHaveLength(whole);
        expect(r.end?.reason).toBe(sum === cut ? undefined : 'truncated');
      }),
    );
  });

  it('random bytes never throw: requests and/or a typed error, buffering bounded', () => {
    const alphabet = fc.constantFrom(...'ab=\n\r\0x'.split('').map((c) => c.charCodeAt(0)), 0xc3, 0xff);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.array(alphabet, { maxLength: 300 })), fc.array(fc.nat({ max: 300 }), { maxLength: 6 }), (raw, cuts) => {
        const r = decode(Buffer.from(raw), (b) => splitAt(b, cuts), { maxLine: 40, maxRequest: 120 });
        if (r.error) expect(r.error).toBeInstanceOf(PolicyProtocolError);
        if (r.end) expect(r.end).toBeInstanceOf(PolicyProtocolError);
        expect(r.maxBuffered).toBeLessThanOrEqual(120);
      }),
    );
  });
});
