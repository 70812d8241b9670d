/**
 * The typed view of one policy request: the attributes of SMTPD_POLICY_README (Postfix 2.1 to
 * 3.8) as fields with Postfix's own names, every attribute as sent in `attributes`, and the
 * ones this list does not know in `extra`.
 */

/** Text attributes. Absent when not sent; "" when sent empty. */
export const POLICY_TEXT_ATTRIBUTES = [
  'request',
  'protocol_state',
  'protocol_name',
  'helo_name',
  'queue_id',
  'sender',
  'recipient',
  'client_address',
  'client_name',
  'reverse_client_name',
  'instance',
  'sasl_method',
  'sasl_username',
  'sasl_sender',
  'ccert_subject',
  'ccert_issuer',
  'ccert_fingerprint',
  'ccert_pubkey_fingerprint',
  'encryption_protocol',
  'encryption_cipher',
  'etrn_domain',
  'stress',
  'policy_context',
  'server_address',
  'compatibility_level',
  'mail_version',
] as const;

/** Decimal attributes. Absent when not sent, empty or not a decimal number (the raw text stays in `attributes`). */
export const POLICY_NUMBER_ATTRIBUTES = ['recipient_count', 'size', 'client_port', 'server_port', 'encryption_keysize'] as const;

export type PolicyTextAttribute = (typeof POLICY_TEXT_ATTRIBUTES)[number];
export type PolicyNumberAttribute = (typeof POLICY_NUMBER_ATTRIBUTES)[number];

export type PolicyRequest = { readonly [K in PolicyTextAttribute]?: string } & { readonly [K in PolicyNumberAttribute]?: number } & {
  /** Every attribute as sent (a repeated name: its last value). */
  readonly attributes: ReadonlyMap<string, string>;
  /** Attributes not listed above (newer Postfix versions, other clients). */
  readonly extra: ReadonlyMap<string, string>;
};

const KIND = new Map<string, 'text' | 'number'>([...POLICY_TEXT_ATTRIBUTES.map((a) => [a, 'text'] as const), ...POLICY_NUMBER_ATTRIBUTES.map((a) => [a, 'number'] as const)]);

/** A decimal of 1 to 15 digits (exact as a double), else NaN. */
function decimal(value: string): number {
  if (value.length === 0 || value.length > 15) return NaN;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return NaN;
  }
  return Number(value);
}

/** The `extra` of a request with none (most of them): shared, never written. */
const NO_EXTRA: ReadonlyMap<string, string> = new Map();

export function toPolicyRequest(attributes: ReadonlyMap<string, string>): PolicyRequest {
  const req: Record<string, unknown> = { attributes, extra: NO_EXTRA };
  let extra: Map<string, string> | undefined;
  for (const [name, value] of attributes) {
    const kind = KIND.get(name);
    if (kind === 'text') req[name] = value;
    else if (kind === 'number') {
      const n = decimal(value);
      if (n === n) req[name] = n;
    } else (extra ??= new Map()).set(name, value);
  }
  if (extra) req.extra = extra;
  return req as PolicyRequest;
}

/** Encodes a request as Postfix sends it (tests and fake MTAs). Throws on a name with "=", LF, CR or NUL, or a value with LF, CR or NUL. */
export function encodePolicyRequest(attributes: Iterable<readonly [string, string]>): Buffer {
  let out = '';
  for (const [name, value] of attributes) {
    if (name === '' || /[=\r\n\0]/.test(name)) throw new TypeError(`bad policy attribute name ${JSON.stringify(name)}`);
    if (/[\r\n\0]/.test(value)) throw new TypeError(`policy attribute ${name} value must not contain CR, LF or NUL`);
    out += `${name}=${value}\n`;
  }
  return Buffer.from(`${out}\n`, 'utf8');
}
