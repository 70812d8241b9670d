/**
 * The MTA side of the filter's replies (for simulated MTAs in tests and benchmarks; the front
 * itself only encodes them): length-prefixed packets back into a command byte and its data.
 * A packet longer than `maxPacket` or of length 0 is an error, as in the command decoder.
 */
import { MilterProtocolError } from '../errors.js';
import { DEFAULT_MAX_PACKET, SMFIR } from './protocol.js';

export interface MilterReply {
  /** SMFIR_* character. */
  command: string;
  data: Buffer;
}

export class MilterReplyDecoder {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxPacket = DEFAULT_MAX_PACKET) {}

  /** The replies completed by `chunk`; throws MilterProtocolError on a bad length. */
  push(chunk: Buffer): MilterReply[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: MilterReply[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len === 0 || len > this.maxPacket) throw new MilterProtocolError(len === 0 ? 'empty-packet' : 'packet-too-large', `reply length ${len}`);
      if (this.buf.length < 4 + len) break;
      out.push({ command: String.fromCharCode(this.buf[4]!), data: Buffer.from(this.buf.subarray(5, 4 + len)) });
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}

/** SMFIR_REPLYCODE's "<code> <text>": the code and the text (with Postfix-style %% undoubled). */
export function replyCodeOf(r: MilterReply): { code: number; text: string } | undefined {
  if (r.command !== SMFIR.REPLYCODE) return undefined;
  const s = r.data.toString('utf8').replace(/\0$/, '');
  const m = /^(\d{3}) (.*)$/s.exec(s);
  return m ? { code: Number(m[1]), text: m[2]!.replace(/%%/g, '%') } : undefined;
}

/** The filter's SMFIC_OPTNEG reply: version, actions, protocol flags (macro lists not parsed). */
export function optnegOf(r: MilterReply): { version: number; actions: number; protocol: number } | undefined {
  if (r.command !== SMFIR.OPTNEG || r.data.length < 12) return undefined;
  return { version: r.data.readUInt32BE(0), actions: r.data.readUInt32BE(4), protocol: r.data.readUInt32BE(8) };
}
