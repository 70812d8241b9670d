/**
 * What a backend offers that a client's MAIL may ask for — 8BITMIME (RFC 6152), SMTPUTF8
 * (RFC 6531) and its SIZE limit (RFC 1870) — and the refusal when a transaction asks for more
 * than its backend offers. A parameter is never dropped on the way: a message declared 8-bit or
 * with UTF-8 addresses is refused (554 5.6.3 / 553 5.6.7) rather than relayed to a backend that
 * cannot take it as sent. Pure.
 */
import { localReply } from './common.js';
import type { SmtpReply } from './reply.js';

/** The ESMTP parameters of a client's MAIL that the relay passes on. */
export interface MailFromParams {
  size?: number;
  body?: '8BITMIME' | '7BIT';
  smtputf8?: boolean;
}

export interface RelayCapabilities {
  eightBitMime: boolean;
  smtpUtf8: boolean;
  /** The backend's SIZE limit in bytes; 0 when it announced none. */
  maxSize: number;
}

/** A sink that takes anything (the dir relay). */
export const UNLIMITED: RelayCapabilities = Object.freeze({ eightBitMime: true, smtpUtf8: true, maxSize: 0 });

/** From the extensions of an EHLO reply (keyword, upper case → parameters). */
export function capabilitiesOf(extensions: ReadonlyMap<string, string>): RelayCapabilities {
  const size = Number(extensions.get('SIZE') ?? '');
  return {
    eightBitMime: extensions.has('8BITMIME'),
    smtpUtf8: extensions.has('SMTPUTF8'),
    maxSize: extensions.has('SIZE') && Number.isSafeInteger(size) && size > 0 ? size : 0,
  };
}

/** What every one of `list` offers; undefined for an empty list (nothing known yet). */
export function intersect(list: readonly RelayCapabilities[]): RelayCapabilities | undefined {
  if (list.length === 0) return undefined;
  const limits = list.map((c) => c.maxSize).filter((n) => n > 0);
  return {
    eightBitMime: list.every((c) => c.eightBitMime),
    smtpUtf8: list.every((c) => c.smtpUtf8),
    maxSize: limits.length > 0 ? Math.min(...limits) : 0,
  };
}

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** An address that needs SMTPUTF8 to be relayed as it is (RFC 6531 §3.2). */
export function needsUtf8(address: string): boolean {
  return NON_ASCII.test(address);
}

const NO_UTF8 = (): SmtpReply => localReply(553, '5.6.7', 'The backend does not support SMTPUTF8: UTF-8 addresses cannot be relayed');

/** The reply refusing a MAIL that `caps` cannot take as sent, or undefined when it can. */
export function mailRefusal(from: string, params: MailFromParams, caps: RelayCapabilities): SmtpReply | undefined {
  if ((params.smtputf8 === true || needsUtf8(from)) && !caps.smtpUtf8) return NO_UTF8();
  if (params.body === '8BITMIME' && !caps.eightBitMime) {
    return localReply(554, '5.6.3', 'Conversion required but not supported: the backend does not support 8BITMIME');
  }
  if (params.size !== undefined && caps.maxSize > 0 && params.size > caps.maxSize) {
    return localReply(552, '5.3.4', `Message size exceeds fixed maximum message size of ${caps.maxSize} bytes`);
  }
  return undefined;
}

/** The reply refusing a recipient `caps` cannot take as sent, or undefined when it can. */
export function rcptRefusal(to: string, caps: RelayCapabilities): SmtpReply | undefined {
  return needsUtf8(to) && !caps.smtpUtf8 ? NO_UTF8() : undefined;
}
