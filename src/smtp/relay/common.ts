/** What both relay kinds share: address checks, local replies, transaction and message counters. */
import type { SmtpReply } from './reply.js';

// eslint-disable-next-line no-control-regex
export const UNSAFE_ADDRESS = /[\x00-\x1f\x7f]/;

export function localReply(code: number, enhanced: string, message: string): SmtpReply {
  return { code, enhanced, message, lines: [message] };
}

export function invalidAddress(kind: 'MAIL' | 'RCPT'): SmtpReply {
  return kind === 'MAIL'
    ? localReply(501, '5.1.7', 'Bad sender address syntax')
    : localReply(501, '5.1.3', 'Bad recipient address syntax');
}

/** Transaction and message counters both relay kinds keep (stats(), metrics). */
export abstract class CountingRelay {
  protected readonly counters = { active: 0, opened: 0, reused: 0, transactions: 0, messages: 0, bytes: 0, failures: 0 };

  transactionEnded(): void {
    this.counters.active--;
  }

  countFailure(): void {
    this.counters.failures++;
  }

  countMessage(bytes: number): void {
    this.counters.messages++;
    this.counters.bytes += bytes;
  }
}
