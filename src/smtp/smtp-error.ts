/** The error object smtp-server turns into a reply: `responseCode` is the code, the message the rest. */
import type { Reply } from '../audit/replies.js';

export interface SmtpError extends Error {
  responseCode: number;
}

export function smtpError(code: number, message: string): SmtpError {
  return Object.assign(new Error(message), { responseCode: code });
}

/** An engine reply as smtp-server's error. */
export function replyError(r: Reply): SmtpError {
  return smtpError(r.code, `${r.enhanced} ${r.text}`);
}
