import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDataEncoder, encodeData, type DataEncoderOptions } from '../../../../src/smtp/relay/data-normalize.js';

/** Encodes `chunks` one by one and then the end, checking the byte counters on the way. */
function encodeChunks(chunks: Buffer[], options?: DataEncoderOptions): Buffer {
  const encoder = createDataEncoder(options);
  const out: Buffer[] = [];
  // copies, so a returned subarray cannot alias a later chunk
  for (const c of chunks) out.push(Buffer.from(encoder.encodeChunk(c)));
  out.push(encoder.finish());
  const result = Buffer.concat(out);
  expect(encoder.bytesOut).toBe(result.length);
  expect(encoder.bytesIn).toBe(chunks.reduce((n, c) => n + c.length, 0));
  return result;
}

function byteByByte(s: string): Buffer[] {
  const b = Buffer.from(s, 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < b.length; i++) chunks.push(b.subarray(i, i + 1));
  return chunks;
}

/** Every split of the input into two chunks. */
function allSplits(s: string): Buffer[][] {
  const b = Buffer.from(s, 'utf8');
  const res: Buffer[][] = [];
  for (let i = 0; i <= b.length; i++) res.push([b.subarray(0, i), b.subarray(i)]);
  return res;
}

const CASES: Array<[string, string, string]> = [
  ['plain CRLF message', 'Subject: x\r\n\r\nhello\r\n', 'Subject: x\r\n\r\nhello\r\n.\r\n'],
  ['no final line break', 'hello', 'hello\r\n.\r\n'],
  ['empty message', '', '.\r\n'],
  ['bare LF', 'a\nb\n', 'a\r\nb\r\n.\r\n'],
  ['bare CR', 'a\rb\r', 'a\r\nb\r\n.\r\n'],
  ['CR CR LF is two line breaks', 'a\r\r\nb\r\n', 'a\r\n\r\nb\r\n.\r\n'],
  ['LF CR is two line breaks', 'a\n\rb', 'a\r\n\r\nb\r\n.\r\n'],
  ['dot line', 'a\r\n.\r\nb\r\n', 'a\r\n..\r\nb\r\n.\r\n'],
  ['leading dot at start', '.hidden\r\n', '..hidden\r\n.\r\n'],
  ['double dot line', 'x\r\n..\r\n', 'x\r\n...\r\n.\r\n'],
  ['dot not at line start', 'a.b\r\n a.\r\n', 'a.b\r\n a.\r\n.\r\n'],
  ['LF.LF smuggle', 'x\n.\nMAIL FROM:<x>\n', 'x\r\n..\r\nMAIL FROM:<x>\r\n.\r\n'],
  ['CR.CR smuggle', 'x\r.\rRCPT TO:<y>\r', 'x\r\n..\r\nRCPT TO:<y>\r\n.\r\n'],
  ['CRLF.LF smuggle', 'x\r\n.\ny\r\n', 'x\r\n..\r\ny\r\n.\r\n'],
  ['LF.CRLF smuggle', 'x\n.\r\ny\r\n', 'x\r\n..\r\ny\r\n.\r\n'],
  ['utf-8 untouched', 'héllo → 世界\r\n', 'héllo → 世界\r\n.\r\n'],
];

describe('createDataEncoder', () => {
  for (const [name, input, expected] of CASES) {
    it(`${name}: one chunk`, () => {
      expect((encodeChunks([Buffer.from(input)])).toString('utf8')).toBe(expected);
      expect(encodeData(input).toString('utf8')).toBe(expected);
    });
    it(`${name}: byte by byte`, () => {
      expect((encodeChunks(byteByByte(input))).toString('utf8')).toBe(expected);
    });
    it(`${name}: every two-chunk split`, () => {
      for (const split of allSplits(input)) {
        expect((encodeChunks(split)).toString('utf8')).toBe(expected);
      }
    });
  }

  it('CR at the end of one chunk and LF at the start of the next is one CRLF', () => {
    const out = encodeChunks([Buffer.from('a\r'), Buffer.from('\nb\r\n')]);
    expect(out.toString()).toBe('a\r\nb\r\n.\r\n');
  });

  it('stuffs a dot at the start of a chunk that follows a line end', () => {
    const out = encodeChunks([Buffer.from('a\r\n'), Buffer.from('.b\r\n'), Buffer.from('\n'), Buffer.from('.')]);
    expect(out.toString()).toBe('a\r\n..b\r\n\r\n..\r\n.\r\n');
  });

  it('the output never contains a bare CR or LF and ends with exactly one terminator', () => {
    // deterministic pseudo-random inputs over a small alphabet rich in CR, LF and dots
    const alphabet = ['\r', '\n', '.', 'a', ' '];
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      let s = '';
      const len = rand(40);
      for (let i = 0; i < len; i++) s += alphabet[rand(alphabet.length)];
      const whole = encodeData(s).toString('latin1');
      const chunked = (encodeChunks(byteByByte(s))).toString('latin1');
      expect(chunked).toBe(whole);
      // every CR is followed by LF and every LF preceded by CR
      expect(/\r(?!\n)|(?<!\r)\n/.test(whole)).toBe(false);
      // the only end-of-data sequence is the final one
      const body = whole.slice(0, whole.length - 3);
      expect(('\r\n' + body).includes('\r\n.\r\n')).toBe(false);
      expect(whole.endsWith('.\r\n')).toBe(true);
      // un-stuffing the body gives back the input with normalized line endings
      const lines = body.split('\r\n');
      lines.pop(); // body ends with CRLF
      const unstuffed = lines.map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n');
      const normalized = s.replace(/\r\n|\r|\n/g, '\r\n');
      expect(unstuffed).toBe(normalized.replace(/\r\n$/, ''));
    }
  });

  it('dotStuff: false / terminate: false only normalizes line endings', () => {
    const opts = { dotStuff: false, terminate: false };
    expect((encodeChunks(byteByByte('.a\n.\rb'), opts)).toString()).toBe('.a\r\n.\r\nb');
    expect(encodeData('', opts).length).toBe(0);
  });

  it('a 1 MiB message in 4 KiB chunks encodes exactly as in one piece', () => {
    const big = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < big.length; i += 1000) big[i] = 0x0a; // bare LFs
    const chunks: Buffer[] = [];
    for (let i = 0; i < big.length; i += 4096) chunks.push(big.subarray(i, i + 4096));
    const result = encodeChunks(chunks);
    expect(result.equals(encodeData(big))).toBe(true);
  });

  it('matches a byte-at-a-time model on random inputs split at random points', () => {
    // The model: the plain state machine, one byte at a time.
    const model = (input: Buffer, dotStuff: boolean): Buffer => {
      const out: number[] = [];
      let lastWasCR = false;
      let atLineStart = true;
      for (const b of input) {
        if (b === 0x0a) {
          if (!lastWasCR) out.push(0x0d, 0x0a);
          lastWasCR = false;
          atLineStart = true;
        } else if (b === 0x0d) {
          out.push(0x0d, 0x0a);
          lastWasCR = true;
          atLineStart = true;
        } else {
          lastWasCR = false;
          if (atLineStart && b === 0x2e && dotStuff) out.push(0x2e);
          atLineStart = false;
          out.push(b);
        }
      }
      return Buffer.from(out);
    };
    const byteArb = fc.constantFrom(0x0d, 0x0a, 0x2e, 0x61, 0x20, 0xc3);
    fc.assert(
      fc.property(fc.array(byteArb, { maxLength: 200 }), fc.array(fc.nat(200), { maxLength: 6 }), fc.boolean(), (bytes, cuts, dotStuff) => {
        const input = Buffer.from(bytes);
        const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
        const encoder = createDataEncoder({ dotStuff, terminate: false });
        const out: Buffer[] = [];
        let from = 0;
        for (const p of [...points, input.length]) {
          // copies, so a returned subarray cannot alias a later chunk
          out.push(Buffer.from(encoder.encodeChunk(Buffer.from(input.subarray(from, p)))));
          from = p;
        }
        expect(Buffer.concat(out).toString('latin1')).toBe(model(input, dotStuff).toString('latin1'));
        expect(encoder.bytesOut).toBe(Buffer.concat(out).length);
      }),
      { numRuns: 2000 },
    );
  });
});
