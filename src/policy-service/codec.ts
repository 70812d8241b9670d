/**
 * Postfix SMTP access policy delegation (SMTPD_POLICY_README), server side. Pure: no sockets.
 *
 * A request is `name=value` lines, each ended by LF (CRLF tolerated), ended by an empty line;
 * a connection carries many requests. The answer is `action=...` and an empty line.
 *
 * - Unknown attribute names are kept (Postfix adds attributes over time).
 * - A name sent twice keeps the LAST value (the README allows first or last).
 * - Values may be empty; a line without "=", an empty name, a NUL, an empty request, a line
 *   over maxLine bytes or a request over maxRequest bytes end the stream with a
 *   PolicyProtocolError: the front logs it and closes that connection (Postfix retries).
 * - Bytes are decoded as UTF-8 (SMTPUTF8 senders); the `request` attribute is not required
 *   here: the front decides what to do with a request that is not smtpd_access_policy.
 */
import { isAscii } from 'node:buffer';
import { PolicyProtocolError } from '../errors.js';
import { StickyDecoder } from '../sticky-decoder.js';
import type { Stage } from '../config/vocabulary.js';
import { toPolicyRequest, type PolicyRequest } from './request.js';

export { encodePolicyRequest, type PolicyRequest } from './request.js';

export const DEFAULT_MAX_LINE = 8 * 1024;
export const DEFAULT_MAX_REQUEST = 64 * 1024;

export interface PolicyDecoderOptions {
  /** Longest attribute line, without its line end. Default 8 KiB. */
  maxLine?: number;
  /** Largest request, line ends and the final empty line included. Default 64 KiB. */
  maxRequest?: number;
}

export interface PolicyDecodeResult {
  requests: PolicyRequest[];
  /** Set once the stream is bad; the decoder then stays failed and drops further input. */
  error?: PolicyProtocolError;
}

const LF = 0x0a;

export class PolicyDecoder extends StickyDecoder<PolicyProtocolError> {
  readonly maxLine: number;
  readonly maxRequest: number;
  private partial: Buffer[] = []; // the unfinished line
  private partialSize = 0;
  private attrs = new Map<string, string>(); // the unfinished request
  private requestSize = 0;

  constructor(opts: PolicyDecoderOptions = {}) {
    super();
    this.maxLine = opts.maxLine ?? DEFAULT_MAX_LINE;
    this.maxRequest = opts.maxRequest ?? DEFAULT_MAX_REQUEST;
    for (const [k, v] of [['maxLine', this.maxLine], ['maxRequest', this.maxRequest]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
  }

  /** Bytes held for the unfinished request (bounded by maxRequest). */
  get buffered(): number {
    return this.requestSize + this.partialSize;
  }

  push(chunk: Buffer): PolicyDecodeResult {
    const requests: PolicyRequest[] = [];
    if (this.error) return { requests, error: this.error };
    let at = 0;
    // An ASCII chunk (the usual case) is made a string once; names and values are then cut from
    // it without a native call each. Other chunks decode each name and value as UTF-8.
    const text = isAscii(chunk) ? chunk.toString('latin1') : undefined;
    // Each turn consumes one line (or the rest of the chunk), so the loop is bounded by its length.
    while (at < chunk.length) {
      const lf = chunk.indexOf(LF, at);
      const end = lf < 0 ? chunk.length : lf;
      const lineSoFar = this.partialSize + (end - at);
      // maxLine + 1: a line of maxLine bytes may still be followed by its CR.
      if (lineSoFar > this.maxLine + 1) return { requests, error: this.fail(new PolicyProtocolError('line-too-long', `attribute line over ${this.maxLine} bytes`)) };
      if (this.requestSize + lineSoFar + (lf < 0 ? 0 : 1) > this.maxRequest) {
        return { requests, error: this.fail(new PolicyProtocolError('request-too-large', `request over ${this.maxRequest} bytes`)) };
      }
      if (lf < 0) {
        this.partial.push(chunk.subarray(at));
        this.partialSize += chunk.length - at;
        break;
      }
      let err: PolicyProtocolError | undefined;
      this.requestSize += lineSoFar + 1;
      if (this.partial.length === 0) err = this.line(chunk, at, end, requests, text);
      else {
        // a line split over chunks: joined once (rare: Postfix writes a request at once)
        const raw = Buffer.concat([...this.partial, chunk.subarray(at, end)]);
        this.partial = [];
        this.partialSize = 0;
        err = this.line(raw, 0, raw.length, requests);
      }
      at = lf + 1;
      if (err) return { requests, error: this.fail(err) };
    }
    return { requests };
  }

  protected override unfinished(): boolean {
    return this.attrs.size > 0 || this.partialSize > 0;
  }

  protected override truncated(): PolicyProtocolError {
    return new PolicyProtocolError('truncated', 'stream ended inside a request');
  }

  /** One line, buf[start, end) without its LF; `text` is buf as a string when it is ASCII. */
  private line(buf: Buffer, start: number, end: number, out: PolicyRequest[], text?: string): PolicyProtocolError | undefined {
    if (end > start && buf[end - 1] === 0x0d) end--;
    if (end - start > this.maxLine) return new PolicyProtocolError('line-too-long', `attribute line over ${this.maxLine} bytes`);
    if (end === start) {
      if (this.attrs.size === 0) return new PolicyProtocolError('malformed', 'empty request (an empty line without attributes)');
      out.push(toPolicyRequest(this.attrs));
      this.attrs = new Map();
      this.requestSize = 0;
      return undefined;
    }
    let eq = -1;
    for (let i = start; i < end; i++) {
      const c = buf[i]!;
      if (c === 0) return new PolicyProtocolError('malformed', 'NUL in an attribute line');
      if (c === 0x3d && eq < 0) eq = i;
    }
    if (eq < 0) return new PolicyProtocolError('malformed', `attribute line without "=": ${JSON.stringify(preview(buf, start, end))}`);
    if (eq === start) return new PolicyProtocolError('malformed', `attribute without a name: ${JSON.stringify(preview(buf, start, end))}`);
    const name = text === undefined ? buf.toString('utf8', start, eq) : text.slice(start, eq);
    this.attrs.delete(name); // keep the last value, in the position it was last sent
    this.attrs.set(name, text === undefined ? buf.toString('utf8', eq + 1, end) : text.slice(eq + 1, end));
    return undefined;
  }

  protected override drop(): void {
    this.partial = [];
    this.partialSize = 0;
    this.attrs = new Map();
    this.requestSize = 0;
  }
}

function preview(b: Buffer, start: number, end: number): string {
  return b.toString('utf8', start, Math.min(end, start + 60));
}

// ---- answers ----------------------------------------------------------------------------------

/** Verbs of access(5) that take an optional text. */
export type PolicyVerb = 'DEFER_IF_PERMIT' | 'DEFER_IF_REJECT' | 'DEFER' | 'REJECT' | 'WARN' | 'INFO';

export type PolicyAction =
  | 'DUNNO'
  | 'OK'
  /** "451 4.7.1 text": a 4xx/5xx reply; 421 and 521 make Postfix disconnect. */
  | { code: number; text: string }
  | { verb: PolicyVerb; text?: string };

/**
 * `action=...` and the empty line. Throws (a caller bug) on a code outside 400..599 or a text
 * with CR, LF or NUL: such a text would end the answer early and desynchronize the stream.
 */
export function encodeAction(action: PolicyAction): Buffer {
  let value: string;
  if (action === 'DUNNO' || action === 'OK') value = action;
  else if ('code' in action) {
    if (!Number.isInteger(action.code) || action.code < 400 || action.code > 599) throw new RangeError(`policy reply code must be 4xx or 5xx, got ${action.code}`);
    value = `${action.code} ${checkText(action.text)}`.trimEnd();
  } else {
    value = action.text === undefined || action.text === '' ? action.verb : `${action.verb} ${checkText(action.text)}`;
  }
  return Buffer.from(`action=${value}\n\n`, 'utf8');
}

function checkText(text: string): string {
  if (/[\r\n\0]/.test(text)) throw new TypeError(`policy action text must not contain CR, LF or NUL: ${JSON.stringify(text)}`);
  return text;
}

// ---- protocol_state → stage -----------------------------------------------------------------

export type PolicyStage = Extract<Stage, 'connect' | 'helo' | 'mail' | 'rcpt' | 'data'>;

const STATE_STAGE: Readonly<Record<string, PolicyStage>> = {
  CONNECT: 'connect',
  EHLO: 'helo',
  HELO: 'helo',
  MAIL: 'mail',
  RCPT: 'rcpt',
  DATA: 'data',
  'END-OF-MESSAGE': 'data',
};

/** The engine stage of a Postfix protocol_state; VRFY, ETRN and anything else: undefined. */
export function protocolStateToStage(state: string | undefined): PolicyStage | undefined {
  if (state === undefined || !Object.hasOwn(STATE_STAGE, state)) return undefined;
  return STATE_STAGE[state];
}
