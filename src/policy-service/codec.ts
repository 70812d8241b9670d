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
    // Each turn consumes one line (or the rest of the chunk), so the loop is bounded by its length.
    while (at < chunk.length) {
      const lf = chunk.indexOf(LF, at);
      const end = lf < 0 ? chunk.length : lf;
      const piece = chunk.subarray(at, end);
      const lineSoFar = this.partialSize + piece.length;
      // maxLine + 1: a line of maxLine bytes may still be followed by its CR.
      if (lineSoFar > this.maxLine + 1) return { requests, error: this.fail(new PolicyProtocolError('line-too-long', `attribute line over ${this.maxLine} bytes`)) };
      if (this.requestSize + lineSoFar + (lf < 0 ? 0 : 1) > this.maxRequest) {
        return { requests, error: this.fail(new PolicyProtocolError('request-too-large', `request over ${this.maxRequest} bytes`)) };
      }
      if (lf < 0) {
        this.partial.push(piece);
        this.partialSize += piece.length;
        break;
      }
      const raw = this.partial.length === 0 ? piece : Buffer.concat([...this.partial, piece]);
      this.partial = [];
      this.partialSize = 0;
      at = lf + 1;
      this.requestSize += raw.length + 1;
      const err = this.line(raw, requests);
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

  private line(raw: Buffer, out: PolicyRequest[]): PolicyProtocolError | undefined {
    const body = raw.length > 0 && raw[raw.length - 1] === 0x0d ? raw.subarray(0, raw.length - 1) : raw;
    if (body.length > this.maxLine) return new PolicyProtocolError('line-too-long', `attribute line over ${this.maxLine} bytes`);
    if (body.length === 0) {
      if (this.attrs.size === 0) return new PolicyProtocolError('malformed', 'empty request (an empty line without attributes)');
      out.push(toPolicyRequest(this.attrs));
      this.attrs = new Map();
      this.requestSize = 0;
      return undefined;
    }
    if (body.includes(0)) return new PolicyProtocolError('malformed', 'NUL in an attribute line');
    const eq = body.indexOf(0x3d);
    if (eq < 0) return new PolicyProtocolError('malformed', `attribute line without "=": ${JSON.stringify(preview(body))}`);
    if (eq === 0) return new PolicyProtocolError('malformed', `attribute without a name: ${JSON.stringify(preview(body))}`);
    const name = body.toString('utf8', 0, eq);
    this.attrs.delete(name); // keep the last value, in the position it was last sent
    this.attrs.set(name, body.toString('utf8', eq + 1));
    return undefined;
  }

  protected override drop(): void {
    this.partial = [];
    this.partialSize = 0;
    this.attrs = new Map();
    this.requestSize = 0;
  }
}

function preview(b: Buffer): string {
  return b.toString('utf8', 0, Math.min(b.length, 60));
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
