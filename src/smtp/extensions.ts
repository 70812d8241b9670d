/**
 * The EHLO reply a client sees promises no more than the relay can pass on: 8BITMIME and
 * SMTPUTF8 only when every backend offers them (as last seen; nothing before a backend was
 * reached), and a SIZE no larger than the smallest backend limit. smtp-server builds the reply
 * from its options; this trims it per EHLO, since what the backends offer is learned at run time.
 * (DSN and REQUIRETLS, whose parameters the relay does not pass on, are never offered: see the
 * front's options.) Pure.
 */
import type { RelayCapabilities } from './relay/capabilities.js';

/** `lines`: the EHLO reply's lines (the greeting line first, then one extension per line). */
export function advertisedExtensions(lines: readonly string[], caps: RelayCapabilities | undefined): string[] {
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (i === 0) {
      out.push(line);
      return;
    }
    const keyword = line.split(' ', 1)[0]!.toUpperCase();
    if (keyword === '8BITMIME' && !caps?.eightBitMime) return;
    if (keyword === 'SMTPUTF8' && !caps?.smtpUtf8) return;
    if (keyword === 'SIZE' && caps !== undefined && caps.maxSize > 0) {
      const ours = Number(line.slice(5));
      out.push(ours > 0 && ours <= caps.maxSize ? line : `SIZE ${caps.maxSize}`);
      return;
    }
    out.push(line);
  });
  return out;
}
