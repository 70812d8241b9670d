/**
 * The one table that maps a decision to an SMTP reply, for every front (the SMTP proxy answers
 * with it, the milter sends it as SMFIR_REPLYCODE, the policy service as `action=4xx …`). Every
 * refusal carries the connection id (`[cid@host]`) so a sender's complaint finds the log line.
 */
import type { Stage } from '../config/vocabulary.js';
import type { ReplySpec } from '../policy/reply.js';

export type Refusal = 'tempfail' | 'reject';

/** A reply as the engine hands it to a front: code, enhanced status code, text (with `[cid@host]`). */
export interface Reply {
  code: number;
  enhanced: string;
  text: string;
}

const TABLE: Record<Refusal, Partial<Record<Stage, ReplySpec>> & { default: ReplySpec }> = {
  tempfail: {
    connect: { code: 421, enhanced: '4.7.0', text: 'Too many connections from your network, try again later' },
    auth_fail: { code: 421, enhanced: '4.7.0', text: 'Too many authentication failures, try again later' },
    default: { code: 451, enhanced: '4.7.1', text: 'Rate limit exceeded, try again later' },
  },
  reject: {
    connect: { code: 554, enhanced: '5.7.1', text: 'Connection refused by policy' },
    rcpt: { code: 550, enhanced: '5.7.1', text: 'Recipient refused by policy' },
    data: { code: 554, enhanced: '5.7.1', text: 'Message refused by policy' },
    auth_fail: { code: 535, enhanced: '5.7.8', text: 'Authentication refused by policy' },
    default: { code: 550, enhanced: '5.7.1', text: 'Refused by policy' },
  },
};

export const STORE_FAILURE_REPLY: ReplySpec = { code: 451, enhanced: '4.3.0', text: 'Temporary local problem, try again later' };

export function formatRetry(seconds: number | undefined): string {
  if (seconds === undefined) return '';
  if (seconds < 120) return ` (try again in ${seconds}s)`;
  if (seconds < 7200) return ` (try again in ${Math.ceil(seconds / 60)}m)`;
  return ` (try again in ${Math.ceil(seconds / 3600)}h)`;
}

/**
 * The reply for a refusal at a stage: the policy's own reply when it has one, else the table's.
 * A tempfail at connect is always a 421 (the connection closes).
 */
export function refusalReply(kind: Refusal, stage: Stage, tag: string, policyReply?: ReplySpec, retryAfter?: number): Reply {
  const base = policyReply ?? TABLE[kind][stage] ?? TABLE[kind].default;
  let code = base.code;
  if (kind === 'tempfail' && stage === 'connect') code = 421;
  const enhanced = base.enhanced ?? (kind === 'tempfail' ? '4.7.0' : '5.7.1');
  const text = base.text || (TABLE[kind][stage] ?? TABLE[kind].default).text;
  return { code, enhanced, text: `${text}${kind === 'tempfail' ? formatRetry(retryAfter) : ''} [${tag}]` };
}

/** A banned client at connect: 421 (the connection closes), naming the banned prefix and the time left. */
export function banReply(tag: string, prefix: string, secondsLeft: number): Reply {
  return { code: 421, enhanced: '4.7.0', text: `Your network ${prefix} is banned${formatRetry(Math.max(1, Math.ceil(secondsLeft)))} [${tag}]` };
}

/** `421 4.7.0 text [cid@host]`: the reply as one line. */
export function replyLine(r: Reply): string {
  return `${r.code} ${r.enhanced} ${r.text}`;
}
