/**
 * Typed errors with stable codes. Every code is listed in ERROR_CODES with a one-line
 * description; a test checks the catalogue and the README stay in step.
 */
export const ERROR_CODES = {
  AG_CONFIG: 'The configuration file is invalid; the message lists every problem with file:line and key.',
  AG_KEY_INVALID: 'A series key is not valid for the series type (garbage address, bad mask, empty string).',
  AG_VALUE_INVALID: 'A distinct series was given an add without a value, or a value that is not 1-1024 characters; or a value was given to a series that is not distinct.',
  AG_SERIES_UNKNOWN: 'No series with that name is defined.',
  AG_SERIES_DEFINITION: 'A series definition is invalid (type, interval, windows or options).',
  AG_WINDOW_RANGE: 'A window range is invalid (negative, or start after end).',
  AG_SNAPSHOT: 'A series snapshot cannot be restored (wrong shape or series mismatch).',
  AG_STORE: 'The shared store (Redis) failed or is unreachable.',
  AG_RELAY: 'The backend mail server failed, refused or timed out.',
  AG_ADMIN_UNAUTHORIZED: 'Admin API: the bearer token is missing or wrong.',
  AG_ADMIN_NOT_FOUND: 'Admin API: no such endpoint.',
  AG_ADMIN_METHOD: 'Admin API: the endpoint does not take that HTTP method.',
  AG_ADMIN_BAD_REQUEST: 'Admin API: a parameter is invalid (key, windows, mask, limit, family).',
  AG_ADMIN_BAD_JSON: 'Admin API: the request body is not the JSON the endpoint expects.',
  AG_ADMIN_BODY_TOO_LARGE: 'Admin API: the request body exceeds 16 KiB.',
  AG_ADMIN_FORBIDDEN_HOST: 'Admin API: the Host header names neither an IP address nor a configured admin.hosts name (DNS rebinding).',
  AG_ADMIN_CROSS_SITE: 'Admin API: the request comes from another site\'s web page (Origin or Sec-Fetch-Site).',
  AG_ADMIN_CONTENT_TYPE: 'Admin API: a request body was sent without Content-Type: application/json.',
  AG_ADMIN_INTERNAL: 'Admin API: an unexpected error (logged with details).',
  AG_ADMIN_STREAMS: 'Admin API: too many live decision streams (GET /events/decisions) are open at once.',
  AG_PERSIST: 'Series state under state_dir could not be written, or a state file could not be restored.',
  AG_LISTEN: 'A listener could not bind its address (in use, not on this host, no permission); the message names the config key.',
  AG_MILTER_PROTOCOL: 'Milter front: an MTA sent a malformed packet (bad length, unknown command, bad payload); that MTA connection is closed.',
  AG_POLICY_PROTOCOL: 'Policy service: an MTA sent a malformed request (line or request too long, a line without "="); that connection is closed.',
  AG_BAN: 'A ban was refused: it covers a protected network, or the ban list is full.',
  AG_BAN_NOT_FOUND: 'No ban on exactly that prefix (a lift names the banned prefix itself).',
  AG_POLICY_TEST: 'A policy-test file (auditgate policy test) is invalid; the message lists every problem with file:line and key.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AuditgateError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class ConfigError extends AuditgateError {
  readonly problems: readonly string[];
  constructor(file: string, problems: readonly string[]) {
    super('AG_CONFIG', `invalid configuration ${file}:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

export class InvalidKeyError extends AuditgateError {
  constructor(message: string) {
    super('AG_KEY_INVALID', message);
  }
}

export class InvalidValueError extends AuditgateError {
  constructor(message: string) {
    super('AG_VALUE_INVALID', message);
  }
}

export class UnknownSeriesError extends AuditgateError {
  constructor(name: string) {
    super('AG_SERIES_UNKNOWN', `unknown series "${name}"`);
  }
}

export class SeriesDefinitionError extends AuditgateError {
  constructor(message: string) {
    super('AG_SERIES_DEFINITION', message);
  }
}

export class WindowRangeError extends AuditgateError {
  constructor(message: string) {
    super('AG_WINDOW_RANGE', message);
  }
}

export class SnapshotError extends AuditgateError {
  constructor(message: string) {
    super('AG_SNAPSHOT', message);
  }
}

export class StoreError extends AuditgateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('AG_STORE', message, options);
  }
}

export class RelayError extends AuditgateError {
  /** SMTP reply code the backend gave, or a synthesized 4xx for transport failures. */
  readonly responseCode: number;
  constructor(message: string, responseCode: number, options?: { cause?: unknown }) {
    super('AG_RELAY', message, options);
    this.responseCode = responseCode;
  }
}

/** The client's message broke off (it vanished mid-DATA): the transfer stopped, not the backend's fault. */
export class MessageAbortedError extends RelayError {}

/**
 * No relay backend could be reached (each is down, or failed just now). Each backend logged its
 * going down once, with the reason; the transactions refused meanwhile are not logged again.
 */
export class BackendsUnavailableError extends RelayError {}

export class PersistError extends AuditgateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('AG_PERSIST', message, options);
  }
}

/** A listener could not bind: the message names the config key and the address. */
export class ListenError extends AuditgateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('AG_LISTEN', message, options);
  }
}

/** Why a milter byte stream was refused; the front closes that MTA connection. */
export type MilterProtocolReason =
  | 'empty-packet' // a length of 0 (a packet needs at least its command byte)
  | 'packet-too-large' // a length over the decoder's bound
  | 'unknown-command' // a command byte the protocol does not define
  | 'malformed' // a payload that does not fit its command (missing NUL, bad family, short port...)
  | 'unsupported-version' // option negotiation offered a protocol version below 2
  | 'out-of-order' // a command the session is not ready for (before option negotiation, a stage before CONNECT)
  | 'truncated'; // the stream ended inside a packet

/** A byte stream from an MTA that a codec refuses, and why; the front closes that MTA connection. */
export abstract class ProtocolError<Reason extends string> extends AuditgateError {
  readonly reason: Reason;
  constructor(code: ErrorCode, protocol: string, reason: Reason, message: string) {
    super(code, `${protocol} protocol error (${reason}): ${message}`);
    this.reason = reason;
  }
}

export class MilterProtocolError extends ProtocolError<MilterProtocolReason> {
  constructor(reason: MilterProtocolReason, message: string) {
    super('AG_MILTER_PROTOCOL', 'milter', reason, message);
  }
}

/** Why a policy-delegation byte stream was refused; the front closes that MTA connection. */
export type PolicyProtocolReason =
  | 'line-too-long' // one attribute line over the decoder's line bound
  | 'request-too-large' // one request over the decoder's request bound
  | 'malformed' // a line without "=", an empty name, a NUL, or an empty request
  | 'truncated'; // the stream ended inside a request

export class PolicyProtocolError extends ProtocolError<PolicyProtocolReason> {
  constructor(reason: PolicyProtocolReason, message: string) {
    super('AG_POLICY_PROTOCOL', 'policy', reason, message);
  }
}
