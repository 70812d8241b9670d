/**
 * Milter v6 codec: commands decoded from hand-built bytes, replies checked byte for byte,
 * fragmentation, and fast-check properties (random bytes and truncations
 * never throw; valid streams round-trip).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MilterProtocolError } from '../../../src/errors.js';
import { MilterDecoder, encodeCommand, type MilterDecodeResult } from '../../../src/milter/codec.js';
import { SMFIF, type MilterCommand } from '../../../src/milter/protocol.js';
import {
  encodeAccept,
  encodeContinue,
  encodeDiscard,
  encodeOptneg,
  encodeProgress,
  encodeReject,
  encodeReplyCode,
  encodeSkip,
  encodeTempfail,
} from '../../../src/milter/replies.js';

/** A packet built by hand: u32 BE length (command + data), command byte, data. */
function pkt(cmd: string, ...parts: Array<string | number[] | Buffer>): Buffer {
  const data = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
  const len = data.length + 1;
  return Buffer.concat([Buffer.from([len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, cmd.charCodeAt(0)]), data]);
}

function decodeAll(bytes: Buffer, split: (b: Buffer) => Buffer[] = (b) => [b], maxPacket?: number): MilterDecodeResult & { end: MilterProtocolError | undefined } {
  const d = new MilterDecoder(maxPacket === undefined ? {} : { maxPacket });
  const messages: MilterCommand[] = [];
  let error: MilterProtocolError | undefined;
  for (const part of split(bytes)) {
    const r = d.push(part);
    messages.push(...r.messages);
    error ??= r.error;
    expect(d.buffered).toBeLessThanOrEqual(4 + d.maxPacket);
  }
  const end = d.end();
  return error ? { messages, error, end } : { messages, end };
}

const oneByOne = (b: Buffer) => [...b].map((x) => Buffer.from([x]));

function only(bytes: Buffer): MilterCommand {
  const r = decodeAll(bytes);
  expect(r.error).toBeUndefined();
  expect(r.end).toBeUndefined();
  expect(r.messages).toHaveLength(1);
  return r.messages[0]!;
}

function errorOf(bytes: Buffer, maxPacket?: number): MilterProtocolError {
  const r = decodeAll(bytes, undefined, maxPacket);
  expect(r.error).toBeInstanceOf(MilterProtocolError);
  expect(r.error!.code).toBe('AG_MILTER_PROTOCOL');
  return r.error!;
}

describe('milter decoder: every command from hand-built bytes', () => {
  it('SMFIC_OPTNEG', () => {
    expect(only(pkt('O', [0, 0, 0, 6], [0, 0, 1, 0xff], [0, 0x1f, 0xff, 0xff]))).toEqual({ type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff });
  });

  it('SMFIC_MACRO for several stages, and an empty list', () => {
    expect(only(pkt('D', 'C', 'j\0mx.example.net\0{daemon_name}\0smtpd\0{client_addr}\x00192.0.2.7\0'))).toEqual({
      type: 'macro',
      command: 'C',
      macros: new Map([
        ['j', 'mx.example.net'],
        ['{daemon_name}', 'smtpd'],
        ['{client_addr}', '192.0.2.7'],
      ]),
    });
    expect(only(pkt('D', 'M', '{auth_authen}\0alice\0{mail_addr}\0a@example.org\0'))).toEqual({
      type: 'macro',
      command: 'M',
      macros: new Map([
        ['{auth_authen}', 'alice'],
        ['{mail_addr}', 'a@example.org'],
      ]),
    });
    expect(only(pkt('D', 'R', '{rcpt_mailer}\0error\0'))).toEqual({ type: 'macro', command: 'R', macros: new Map([['{rcpt_mailer}', 'error']]) });
    expect(only(pkt('D', 'E', 'i\x008045F2AB23\0'))).toEqual({ type: 'macro', command: 'E', macros: new Map([['i', '8045F2AB23']]) });
    expect(only(pkt('D', 'T'))).toEqual({ type: 'macro', command: 'T', macros: new Map() });
  });

  it('SMFIC_CONNECT: IPv4, IPv6 (also Sendmail\'s "IPv6:" form), unix and unknown', () => {
    expect(only(pkt('C', 'mail.example.org\0', '4', [0x9c, 0x40], '192.0.2.7\0'))).toEqual({
      type: 'connect',
      hostname: 'mail.example.org',
      family: 'ipv4',
      port: 40000,
      address: '192.0.2.7',
    });
    expect(only(pkt('C', '[2001:db8::7]\0', '6', [0x01, 0xbb], '2001:db8::7\0'))).toEqual({
      type: 'connect',
      hostname: '[2001:db8::7]',
      family: 'ipv6',
      port: 443,
      address: '2001:db8::7',
    });
    expect(only(pkt('C', 'h\0', '6', [0, 25], 'IPv6:2001:db8::1\0'))).toMatchObject({ family: 'ipv6', port: 25, address: '2001:db8::1' });
    expect(only(pkt('C', 'localhost\0', 'L', [0, 0], '/run/postfix.sock\0'))).toEqual({
      type: 'connect',
      hostname: 'localhost',
      family: 'unix',
      port: 0,
      address: '/run/postfix.sock',
    });
    expect(only(pkt('C', 'unknown\0', 'U'))).toEqual({ type: 'connect', hostname: 'unknown', family: 'unknown' });
  });

  it('SMFIC_HELO, MAIL with ESMTP args, RCPT, DATA, HEADER, EOH, BODY, BODYEOB, ABORT, QUIT, QUIT_NC, UNKNOWN', () => {
    expect(only(pkt('H', 'client.example.org\0'))).toEqual({ type: 'helo', name: 'client.example.org' });
    expect(only(pkt('M', '<a@example.org>\0SIZE=1234\0BODY=8BITMIME\0'))).toEqual({ type: 'mail', sender: '<a@example.org>', args: ['SIZE=1234', 'BODY=8BITMIME'] });
    expect(only(pkt('M', '<>\0'))).toEqual({ type: 'mail', sender: '<>', args: [] });
    expect(only(pkt('R', '<b@example.net>\0NOTIFY=NEVER\0'))).toEqual({ type: 'rcpt', recipient: '<b@example.net>', args: ['NOTIFY=NEVER'] });
    expect(only(pkt('T'))).toEqual({ type: 'data' });
    expect(only(pkt('L', 'Subject\0', 'hello\0'))).toEqual({ type: 'header', name: 'Subject', value: 'hello' });
    expect(only(pkt('N'))).toEqual({ type: 'eoh' });
    expect(only(pkt('B', 'line\r\n\0binary\xff'))).toEqual({ type: 'body', chunk: Buffer.from('line\r\n\0binary\xff', 'latin1') });
    expect(only(pkt('E'))).toEqual({ type: 'eom' });
    expect(only(pkt('E', 'last'))).toEqual({ type: 'eom', chunk: Buffer.from('last') });
    expect(only(pkt('A'))).toEqual({ type: 'abort' });
    expect(only(pkt('Q'))).toEqual({ type: 'quit' });
    expect(only(pkt('K'))).toEqual({ type: 'quit_nc' });
    expect(only(pkt('U', 'XFOO bar\0'))).toEqual({ type: 'unknown', command: 'XFOO bar' });
  });

  it('UTF-8 strings', () => {
    expect(only(pkt('M', Buffer.from('<jörg@example.org>\0', 'utf8')))).toEqual({ type: 'mail', sender: '<jörg@example.org>', args: [] });
  });
});

describe('milter decoder: bad streams end in a typed error', () => {
  const bad: Array<[string, Buffer, string]> = [
    ['length 0', Buffer.from([0, 0, 0, 0]), 'empty-packet'],
    ['length 0x7fffffff', Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x4f]), 'packet-too-large'],
    ['length 0xffffffff', Buffer.from([0xff, 0xff, 0xff, 0xff]), 'packet-too-large'],
    ['unknown command byte', pkt('Z', 'x'), 'unknown-command'],
    ['reply byte sent as a command', pkt('c'), 'unknown-command'],
    ['OPTNEG too short', pkt('O', [0, 0, 0, 6]), 'malformed'],
    ['MACRO without command char', pkt('D'), 'malformed'],
    ['MACRO name without value', pkt('D', 'C', 'j\0'), 'malformed'],
    ['MACRO missing NUL', pkt('D', 'C', 'j\0x'), 'malformed'],
    ['CONNECT hostname missing NUL', pkt('C', 'host'), 'malformed'],
    ['CONNECT missing family', pkt('C', 'host\0'), 'malformed'],
    ['CONNECT bad family', pkt('C', 'host\0', 'X', [0, 25], '1.2.3.4\0'), 'malformed'],
    ['CONNECT truncated port', pkt('C', 'host\0', '4', [0]), 'malformed'],
    ['CONNECT address missing NUL', pkt('C', 'host\0', '4', [0, 25], '1.2.3.4'), 'malformed'],
    ['CONNECT bad IPv4', pkt('C', 'host\0', '4', [0, 25], '1.2.3.400\0'), 'malformed'],
    ['CONNECT bad IPv6', pkt('C', 'host\0', '6', [0, 25], 'not:an:address\0'), 'malformed'],
    ['CONNECT unknown with data', pkt('C', 'host\0', 'U', [0, 25]), 'malformed'],
    ['HELO missing NUL', pkt('H', 'client'), 'malformed'],
    ['HELO two strings', pkt('H', 'a\0b\0'), 'malformed'],
    ['MAIL empty', pkt('M'), 'malformed'],
    ['RCPT missing NUL', pkt('R', '<a@b>'), 'malformed'],
    ['HEADER one string', pkt('L', 'Subject\0'), 'malformed'],
    ['DATA with data', pkt('T', 'x'), 'malformed'],
    ['QUIT with data', pkt('Q', 'x'), 'malformed'],
  ];
  it.each(bad)('%s', (_name, bytes, reason) => {
    expect(errorOf(bytes).reason).toBe(reason);
  });

  it('a length over a configured bound is refused as soon as the header is in', () => {
    const d = new MilterDecoder({ maxPacket: 100 });
    const r = d.push(Buffer.from([0, 0, 0, 101]));
    expect(r.error?.reason).toBe('packet-too-large');
    expect(d.buffered).toBe(0);
    expect(new MilterDecoder({ maxPacket: 100 }).push(pkt('B', Buffer.alloc(99))).messages).toHaveLength(1);
  });

  it('keeps the commands before the error and stays failed, holding nothing', () => {
    const d = new MilterDecoder();
    const r = d.push(Buffer.concat([pkt('H', 'a\0'), pkt('T'), Buffer.from([0, 0, 0, 0]), pkt('Q')]));
    expect(r.messages).toEqual([{ type: 'helo', name: 'a' }, { type: 'data' }]);
    expect(r.error?.reason).toBe('empty-packet');
    expect(d.push(pkt('Q'))).toEqual({ messages: [], error: r.error });
    expect(d.buffered).toBe(0);
    expect(d.error).toBe(r.error);
    expect(d.end()).toBe(r.error);
  });

  it('a stream ending inside a packet is "truncated"; at a packet boundary it is not', () => {
    const whole = pkt('H', 'client\0');
    const d = new MilterDecoder();
    expect(d.push(whole.subarray(0, 7)).messages).toEqual([]);
    expect(d.end()?.reason).toBe('truncated');
    const ok = new MilterDecoder();
    expect(ok.push(whole).messages).toHaveLength(1);
    expect(ok.end()).toBeUndefined();
  });

  it('a length below the bound is held only up to the bound', () => {
    const d = new MilterDecoder();
    d.push(Buffer.from([0, 1, 0, 0])); // 65536: allowed
    for (let i = 0; i < 64; i++) d.push(Buffer.alloc(1000));
    expect(d.buffered).toBe(64_000);
    const r = d.push(Buffer.alloc(2000, 0x41));
    expect(r.error?.reason).toBe('unknown-command');
    expect(d.buffered).toBe(0);
  });
});

describe('milter decoder: fragmentation', () => {
  const stream = Buffer.concat([
    pkt('O', [0, 0, 0, 6], [0, 0, 1, 0xff], [0, 0x1f, 0xff, 0xff]),
    pkt('D', 'C', 'j\0mx\0'),
    pkt('C', 'mail.example.org\0', '4', [0x9c, 0x40], '192.0.2.7\0'),
    pkt('H', 'client\0'),
    pkt('M', '<a@example.org>\0SIZE=10\0'),
    pkt('R', '<b@example.net>\0'),
    pkt('T'),
    pkt('E'),
    pkt('Q'),
  ]);

  it('one byte at a time gives the same commands as one push', () => {
    const whole = decodeAll(stream);
    expect(whole.error).toBeUndefined();
    expect(whole.messages).toHaveLength(9);
    expect(decodeAll(stream, oneByOne)).toEqual(whole);
  });

  it('any split gives the same commands (property)', () => {
    const whole = decodeAll(stream).messages;
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 20 }), (cuts) => {
        expect(decodeAll(stream, (b) => splitAt(b, cuts)).messages).toEqual(whole);
      }),
    );
  });
});

function splitAt(b: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts)].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

describe('milter replies, byte for byte', () => {
  it('one-letter replies', () => {
    expect(encodeContinue()).toEqual(Buffer.from([0, 0, 0, 1, 0x63]));
    expect(encodeAccept()).toEqual(Buffer.from([0, 0, 0, 1, 0x61]));
    expect(encodeTempfail()).toEqual(Buffer.from([0, 0, 0, 1, 0x74]));
    expect(encodeReject()).toEqual(Buffer.from([0, 0, 0, 1, 0x72]));
    expect(encodeDiscard()).toEqual(Buffer.from([0, 0, 0, 1, 0x64]));
    expect(encodeProgress()).toEqual(Buffer.from([0, 0, 0, 1, 0x70]));
    expect(encodeSkip()).toEqual(Buffer.from([0, 0, 0, 1, 0x73]));
  });

  it('SMFIR_REPLYCODE', () => {
    const text = '421 4.7.0 Too many connections [ab12@gw.test]\0';
    expect(encodeReplyCode(421, '4.7.0 Too many connections [ab12@gw.test]')).toEqual(Buffer.concat([Buffer.from([0, 0, 0, 1 + text.length, 0x79]), Buffer.from(text, 'latin1')]));
    expect(encodeReplyCode(550, '5.7.1 100% refused').subarray(5).toString('latin1')).toBe('550 5.7.1 100%% refused\0');
    expect(encodeReplyCode(451, 'try later').subarray(5).toString('latin1')).toBe('451 try later\0');
  });

  it('SMFIR_REPLYCODE refuses what the MTA would refuse or misread', () => {
    expect(() => encodeReplyCode(250, '2.0.0 ok')).toThrow(RangeError);
    expect(() => encodeReplyCode(600, 'x')).toThrow(RangeError);
    expect(() => encodeReplyCode(451.5, 'x')).toThrow(RangeError);
    for (const t of ['a\r\nb', 'a\nb', 'a\rb', 'a\0b', '', 'tab\there']) expect(() => encodeReplyCode(451, t), JSON.stringify(t)).toThrow(TypeError);
    expect(() => encodeReplyCode(451, '5.7.1 wrong class')).toThrow(TypeError);
  });

  it('SMFIC_OPTNEG reply, without and with macro lists', () => {
    expect(encodeOptneg({ actions: 0, protocol: 0x170 })).toEqual(pkt('O', [0, 0, 0, 6], [0, 0, 0, 0], [0, 0, 1, 0x70]));
    expect(encodeOptneg({ version: 2, actions: 0, protocol: 0x70 })).toEqual(pkt('O', [0, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 0x70]));
    expect(encodeOptneg({ actions: SMFIF.SETSYMLIST, protocol: 0x170, macros: { ENVFROM: ['{auth_authen}', 'i'], CONNECT: ['j', '{client_addr}'] } })).toEqual(
      pkt('O', [0, 0, 0, 6], [0, 0, 1, 0], [0, 0, 1, 0x70], [0, 0, 0, 0], 'j {client_addr}\0', [0, 0, 0, 2], '{auth_authen} i\0'),
    );
    expect(() => encodeOptneg({ actions: 0, protocol: 0, macros: { HELO: ['a b'] } })).toThrow(TypeError);
  });
});

// ---- properties over streams ------------------------------------------------------------------

const text = fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => s.replace(/\0/g, ''));
const bytes = (min = 0) => fc.uint8Array({ minLength: min, maxLength: 64 }).map((a) => Buffer.from(a));

const commandArb: fc.Arbitrary<MilterCommand> = fc.oneof(
  fc.record({ type: fc.constant('optneg' as const), version: fc.nat({ max: 0xffffffff }), actions: fc.nat({ max: 0xffffffff }), protocol: fc.nat({ max: 0xffffffff }) }),
  fc.record({
    type: fc.constant('macro' as const),
    command: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
    macros: fc.uniqueArray(fc.tuple(text, text), { selector: (t) => t[0], maxLength: 5 }).map((l) => new Map(l)),
  }),
  fc.oneof(
    fc.record({ type: fc.constant('connect' as const), hostname: text, family: fc.constant('ipv4' as const), port: fc.nat({ max: 65535 }), address: fc.ipV4() }),
    fc.record({ type: fc.constant('connect' as const), hostname: text, family: fc.constant('ipv6' as const), port: fc.nat({ max: 65535 }), address: fc.ipV6() }),
    fc.record({ type: fc.constant('connect' as const), hostname: text, family: fc.constant('unix' as const), port: fc.nat({ max: 65535 }), address: text }),
    fc.record({ type: fc.constant('connect' as const), hostname: text, family: fc.constant('unknown' as const) }),
  ),
  fc.record({ type: fc.constant('helo' as const), name: text }),
  fc.record({ type: fc.constant('mail' as const), sender: text, args: fc.array(text, { maxLength: 3 }) }),
  fc.record({ type: fc.constant('rcpt' as const), recipient: text, args: fc.array(text, { maxLength: 3 }) }),
  fc.record({ type: fc.constant('header' as const), name: text, value: text }),
  fc.record({ type: fc.constant('body' as const), chunk: bytes() }),
  fc.oneof(fc.constant({ type: 'eom' as const }), fc.record({ type: fc.constant('eom' as const), chunk: bytes(1) })),
  fc.record({ type: fc.constant('unknown' as const), command: text }),
  fc.constantFrom<MilterCommand>({ type: 'data' }, { type: 'eoh' }, { type: 'abort' }, { type: 'quit' }, { type: 'quit_nc' }),
);

function mustNotThrow(stream: Buffer, cuts: number[], maxPacket?: number): ReturnType<typeof decodeAll> {
  const r = decodeAll(stream, (b) => splitAt(b, cuts), maxPacket);
  if (r.error) expect(r.error).toBeInstanceOf(MilterProtocolError);
  if (r.end) expect(r.end).toBeInstanceOf(MilterProtocolError);
  return r;
}

describe('milter decoder properties', () => {
  it('valid streams round-trip, however they are split', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 12 }), fc.array(fc.nat({ max: 2000 }), { maxLength: 8 }), (cmds, cuts) => {
        const stream = Buffer.concat(cmds.map(encodeCommand));
        const r = mustNotThrow(stream, cuts);
        expect(r.error).toBeUndefined();
        expect(r.end).toBeUndefined();
        expect(r.messages).toEqual(cmds);
      }),
    );
  });

  it('a truncated valid stream gives the whole packets, then "truncated" at end of stream', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { minLength: 1, maxLength: 8 }), fc.double({ min: 0, max: 1, noNaN: true }), (cmds, at) => {
        const packets = cmds.map(encodeCommand);
        const stream = Buffer.concat(packets);
        const cut = Math.floor(at * stream.length);
        const r = mustNotThrow(stream.subarray(0, cut), []);
        expect(r.error).toBeUndefined();
        let whole = 0;
        let sum = 0;
        for (const p of packets) {
          if (sum + p.length > cut) break;
          sum += p.length;
          whole++;
        }
        expect(r.messages).toEqual(cmds.slice(0, whole));
        expect(r.end?.reason).toBe(sum === cut ? undefined : 'truncated');
      }),
    );
  });

  it('random bytes never throw: they end in commands and/or a typed error, and stay bounded', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat({ max: 300 }), { maxLength: 6 }), fc.integer({ min: 1, max: 80 }), (raw, cuts, maxPacket) => {
        mustNotThrow(Buffer.from(raw), cuts, maxPacket);
      }),
    );
  });

  it('valid streams with bytes flipped never throw', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }), (cmds, flips) => {
        const stream = Buffer.concat(cmds.map(encodeCommand));
        for (const [i, v] of flips) stream[i % stream.length] = v;
        mustNotThrow(stream, []);
      }),
    );
  });
});
