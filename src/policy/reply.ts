/** SMTP reply text parsing shared by policy compilation and the reply table. */
export interface ReplySpec {
  code: number;
  enhanced?: string;
  text: string;
}

/** Parses "421 4.7.0 text" or "451 text". Returns null when there is no leading 3-digit code. */
export function parseReplyText(reply: string): ReplySpec | null {
  const m = /^([2-5]\d\d)(?:[ -]([2-5]\.\d{1,3}\.\d{1,3}))?(?:\s+(.*))?$/s.exec(reply.trim());
  if (!m) return null;
  const spec: ReplySpec = { code: Number(m[1]), text: (m[3] ?? '').trim() };
  if (m[2]) spec.enhanced = m[2];
  return spec;
}
