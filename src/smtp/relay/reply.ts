/**
 * SMTP replies from a backend: the reply shape, its one-line form for logs and client replies,
 * and the streaming reader that cuts a byte stream into (multi-line) replies, with bounds on
 * line length and lines per reply.
 */

export interface SmtpReply {
  code: number;
  /** RFC 3463 enhanced status code of the first line, when present (e.g. "2.1.0"). */
  enhanced?: string;
  /** Text of all lines without code / enhanced code, joined by ' '. */
  message: string;
  /** Text of each line without code / enhanced code. */
  lines: string[];
}

/** Longest reply line we accept (RFC 5321 says 512; be generous). */
const MAX_LINE = 8192;
/** Most lines in one multi-line reply. */
const MAX_REPLY_LINES = 512;
const REPLY_LINE = /^([2-5]\d\d)(?:([ -])(.*))?$/s;
const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: +|$)/;

export function formatReply(reply: SmtpReply): string {
  return `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} ${reply.message}`.trimEnd();
}

export function buildReply(code: number, rawLines: string[]): SmtpReply {
  let enhanced: string | undefined;
  const first = rawLines[0] ?? '';
  const em = ENHANCED.exec(first);
  if (em?.[1] && em[1][0] === String(code)[0]) enhanced = em[1];
  const lines = rawLines.map((l) => {
    if (enhanced && l.startsWith(enhanced)) return l.slice(enhanced.length).trimStart();
    return l;
  });
  const reply: SmtpReply = { code, message: lines.join(' ').trim(), lines };
  if (enhanced) reply.enhanced = enhanced;
  return reply;
}

/** What one chunk of backend bytes gave: whole replies, and an error once the stream is unusable. */
export interface ReadResult {
  replies: SmtpReply[];
  error?: string;
}

/** Cuts backend bytes into replies; after an error it reads nothing more. */
export class ReplyReader {
  private buffer = '';
  private partial: { code: number; lines: string[] } | undefined;
  private failed = false;

  /** True while bytes of an unfinished reply are held (nothing may follow a 220 to STARTTLS). */
  get pending(): boolean {
    return this.buffer.length > 0 || this.partial !== undefined;
  }

  read(chunk: Buffer): ReadResult {
    const out: ReadResult = { replies: [] };
    if (this.failed) return out;
    // latin1 keeps one char per byte, so a UTF-8 sequence split across chunks survives;
    // each complete line is decoded as UTF-8 below.
    this.buffer += chunk.toString('latin1');
    let nl = this.buffer.indexOf('\n');
    while (nl >= 0) {
      const line = Buffer.from(this.buffer.slice(0, nl).replace(/\r$/, ''), 'latin1').toString('utf8');
      this.buffer = this.buffer.slice(nl + 1);
      const error = this.line(line, out.replies);
      if (error !== undefined) return this.fail(out, error);
      nl = this.buffer.indexOf('\n');
    }
    if (this.buffer.length > MAX_LINE) return this.fail(out, 'backend reply line too long');
    return out;
  }

  private fail(out: ReadResult, error: string): ReadResult {
    this.failed = true;
    out.error = error;
    return out;
  }

  /** Takes one line; returns why the stream is unusable, if it is. */
  private line(line: string, replies: SmtpReply[]): string | undefined {
    if (line.length > MAX_LINE) return 'backend reply line too long';
    const m = REPLY_LINE.exec(line);
    if (!m) return `malformed reply from backend: ${JSON.stringify(line.slice(0, 80))}`;
    const code = Number(m[1]);
    if (this.partial && this.partial.code !== code) return 'inconsistent multi-line reply from backend';
    const partial = this.partial ?? { code, lines: [] };
    partial.lines.push(m[3] ?? '');
    if (partial.lines.length > MAX_REPLY_LINES) return 'backend reply has too many lines';
    if (m[2] === '-') {
      this.partial = partial;
      return undefined;
    }
    this.partial = undefined;
    replies.push(buildReply(partial.code, partial.lines));
    return undefined;
  }
}
