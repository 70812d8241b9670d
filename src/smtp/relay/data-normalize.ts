/**
 * DATA encoding for the backend side of the relay.
 *
 * What smtp-server (3.21.6, read from node_modules/smtp-server/dist/esm/smtp-stream.js and
 * smtp-connection.js — the package ships dist/{esm,cjs}/, there is no lib/ directory; the
 * `smtp-server/lib/*.js` export map points at dist) hands to `onData`:
 *
 * - End of data is ONLY the exact byte sequence CR LF "." CR LF (`END_SEQUENCE`), or "." CR LF as
 *   the very first bytes of the DATA payload (empty message). "\n.\n", "\r.\r", "\r\n.\n" and
 *   "\n.\r\n" are NOT end-of-data: they are passed through as message content, unchanged.
 * - The stream is dot-unstuffed: a "." that directly follows an LF (any LF, including a bare LF
 *   not preceded by CR) and is itself followed by another "." is dropped, and so is a leading
 *   ".." at the very start of the payload. A "." after a bare CR is never unstuffed.
 * - The terminating "." CR LF is removed, but the CR LF that ends the last line is kept, so a
 *   non-empty message always ends with CR LF; an empty message yields no bytes at all.
 * - Bare LF and bare CR are NOT flagged, rejected or normalized in the data phase: the bytes
 *   arrive exactly as the client sent them (minus the unstuffing above). (In command mode the
 *   parser splits lines on /\r?\n/, i.e. it does accept a bare LF as a command terminator.)
 * - Size: `SMTPServerOptions.size` does not stop the stream; smtp-server keeps emitting data and
 *   sets `stream.sizeExceeded = true` (mid-transfer as soon as the limit is passed) and
 *   `stream.byteLength`. Only with `rejectOversized` does it send 552 itself.
 * - If the client disconnects before end-of-data, smtp-server destroys the stream (with an
 *   ECONNECTION error only if an 'error' listener is attached, otherwise without an error), so
 *   it emits 'close' but never 'end'. A stream that did not 'end' is therefore a truncated
 *   message and must never be terminated with "." towards the backend.
 * - If the onData callback is called while the stream is still unread, smtp-server resumes
 *   (drains) it itself; it replies only once the stream has ended.
 *
 * Consequence for us: because smtp-server passes bare CR / bare LF through, a client could
 * send "\n.\nMAIL FROM:<x>\n" inside a message and a backend that accepts LF.LF (or CR.CR) as
 * end-of-data would see a second transaction (SMTP smuggling). The encoder below therefore
 * normalizes every line ending to CRLF *before* dot-stuffing, so every line that starts with
 * "." — whatever line ending preceded it — is stuffed, and the only end-of-data the backend
 * sees is the one we append.
 */
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOT_BUF = Buffer.from('.');
const TERMINATOR = Buffer.from('.\r\n');

export interface DataEncoderOptions {
  /** Double a "." at the start of a line (SMTP transparency, RFC 5321 4.5.2). Default true. */
  dotStuff?: boolean;
  /**
   * On end, append the end-of-data marker: CRLF (only if the output does not already end with
   * a line break) followed by ".\r\n". Default true. With false nothing is appended.
   */
  terminate?: boolean;
}

/**
 * Chunk by chunk: bare LF / bare CR / CRLF all become CRLF, lines starting with "." get an
 * extra ".", and (optionally) finish() gives the "\r\n.\r\n" that ends the output. State is
 * carried across chunk boundaries (a CR at the end of one chunk and the LF at the start of the
 * next are one line break; a "." at the start of a chunk that follows a line break is stuffed).
 */
export class DataEncoder {
  /** Bytes consumed from the input. */
  bytesIn = 0;
  /** Bytes produced (including dot-stuffing and the terminator). */
  bytesOut = 0;
  private readonly dotStuff: boolean;
  private readonly terminate: boolean;
  /** The last input byte was a CR (already emitted as CRLF); an LF right after it is swallowed. */
  private lastWasCR = false;
  /** The output is at the start of a line (true before any output). */
  private atLineStart = true;

  constructor(options: DataEncoderOptions = {}) {
    this.dotStuff = options.dotStuff ?? true;
    this.terminate = options.terminate ?? true;
  }

  /**
   * Encodes one chunk and returns the output.
   * Line breaks are found with indexOf (memchr), and a chunk whose line endings are already
   * CRLF with no line starting with "." is returned as it is, without a copy.
   */
  encodeChunk(chunk: Buffer): Buffer {
    const len = chunk.length;
    this.bytesIn += len;
    let parts: Buffer[] | undefined;
    let start = 0;
    let i = 0;
    let nextCR = -2;
    let nextLF = -2;
    while (i < len) {
      if (this.lastWasCR) {
        this.lastWasCR = false;
        if (chunk[i] === LF) {
          // the CR before it, at the end of the previous chunk, was already sent as CRLF
          i++;
          start = i;
          continue;
        }
      }
      if (this.atLineStart) {
        const b = chunk[i];
        if (b !== CR && b !== LF) {
          this.atLineStart = false;
          if (b === DOT && this.dotStuff) {
            parts ??= [];
            if (start < i) parts.push(chunk.subarray(start, i));
            parts.push(DOT_BUF);
            start = i; // the original "." goes out with the next run
          }
        }
      }
      if (nextCR !== -1 && nextCR < i) nextCR = chunk.indexOf(CR, i);
      if (nextLF !== -1 && nextLF < i) nextLF = chunk.indexOf(LF, i);
      const nb = nextCR === -1 ? nextLF : nextLF === -1 ? nextCR : Math.min(nextCR, nextLF);
      if (nb === -1) break;
      this.atLineStart = true;
      if (chunk[nb] === CR && nb + 1 < len && chunk[nb + 1] === LF) {
        i = nb + 2; // CRLF: already right, keep it in the current run
        continue;
      }
      // bare LF, bare CR, or a CR that ends the chunk: the run so far, then CRLF
      parts ??= [];
      if (start < nb) parts.push(chunk.subarray(start, nb));
      parts.push(CRLF);
      this.lastWasCR = chunk[nb] === CR;
      i = nb + 1;
      start = i;
    }
    if (parts === undefined) {
      const out = start === 0 ? chunk : chunk.subarray(start);
      this.bytesOut += out.length;
      return out;
    }
    if (start < len) parts.push(chunk.subarray(start, len));
    const out = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    this.bytesOut += out.length;
    return out;
  }

  /** The bytes to emit at the end (terminator), updating the counters. */
  finish(): Buffer {
    if (!this.terminate) return Buffer.alloc(0);
    const out = this.atLineStart ? TERMINATOR : Buffer.concat([CRLF, TERMINATOR]);
    this.atLineStart = true;
    this.lastWasCR = false;
    this.bytesOut += out.length;
    return out;
  }
}

export function createDataEncoder(options?: DataEncoderOptions): DataEncoder {
  return new DataEncoder(options);
}

/** One-shot encoding of a complete message (same rules as chunk by chunk). */
export function encodeData(input: Buffer | string, options?: DataEncoderOptions): Buffer {
  const encoder = new DataEncoder(options);
  const body = encoder.encodeChunk(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
  const tail = encoder.finish();
  return tail.length > 0 ? Buffer.concat([body, tail]) : Buffer.from(body);
}
