/**
 * Filter → MTA replies of the milter protocol (v6). Pure encoders; a bad argument is a caller
 * bug and throws TypeError / RangeError.
 */
import { packet, u32s } from './codec.js';
import { SMFI_PROT_VERSION, SMFIM, SMFIR, type MacroStage } from './protocol.js';

/** Macro names per stage, Sendmail-style (`{auth_authen}`, single letters bare). */
export type MacroLists = Partial<Record<MacroStage, readonly string[]>>;

export interface OptnegReply {
  /** Default 6; negotiate() picks min(MTA's, 6). */
  version?: number;
  actions: number;
  protocol: number;
  /** Macro lists (libmilter's smfi_setsymlist); only with SMFIF_SETSYMLIST in `actions`. */
  macros?: MacroLists;
}

/** SMFIC_OPTNEG reply: version, actions, protocol flags, then u32 stage + "name name\0" per list. */
export function encodeOptneg(r: OptnegReply): Buffer {
  const parts = [u32s(r.version ?? SMFI_PROT_VERSION, r.actions, r.protocol)];
  const stages = (Object.keys(SMFIM) as MacroStage[]).sort((a, b) => SMFIM[a] - SMFIM[b]);
  for (const stage of stages) {
    const names = r.macros?.[stage];
    if (names === undefined) continue;
    for (const n of names) {
      if (n === '' || /[\s\0]/.test(n)) throw new TypeError(`macro name ${JSON.stringify(n)} must be non-empty, without spaces or NUL`);
    }
    parts.push(u32s(SMFIM[stage]), Buffer.from(`${names.join(' ')}\0`, 'utf8'));
  }
  return packet(SMFIR.OPTNEG, ...parts);
}

export const encodeContinue = (): Buffer => packet(SMFIR.CONTINUE);
export const encodeAccept = (): Buffer => packet(SMFIR.ACCEPT);
export const encodeTempfail = (): Buffer => packet(SMFIR.TEMPFAIL);
export const encodeReject = (): Buffer => packet(SMFIR.REJECT);
export const encodeDiscard = (): Buffer => packet(SMFIR.DISCARD);
/** "Still working": the MTA restarts its timeout (a tarpit sends these while it holds the answer). */
export const encodeProgress = (): Buffer => packet(SMFIR.PROGRESS);
/** Skip further events of this kind (body chunks, headers, recipients); needs SMFIP_SKIP. */
export const encodeSkip = (): Buffer => packet(SMFIR.SKIP);

/**
 * SMFIR_REPLYCODE: "<code> <text>\0", e.g. (451, "4.7.1 Rate limit exceeded [cid@host]").
 * The code is 400..599; the text is one non-empty line (no C0 control characters or DEL); an
 * enhanced status code in it must have the reply's class (Postfix refuses "451 5.7.1 ...").
 * A '%' is doubled: Sendmail formats the text with printf, Postfix undoubles it.
 */
export function encodeReplyCode(code: number, text: string): Buffer {
  if (!Number.isInteger(code) || code < 400 || code > 599) throw new RangeError(`milter reply code must be 4xx or 5xx, got ${code}`);
  if (text === '' || hasControl(text)) throw new TypeError(`milter reply text must be one non-empty line without CR, LF, NUL or other control characters: ${JSON.stringify(text)}`);
  const cls = String(code)[0]!;
  if (/^\d/.test(text) && text[0] !== cls) throw new TypeError(`enhanced status code in ${JSON.stringify(text)} does not match reply code ${code}`);
  return packet(SMFIR.REPLYCODE, Buffer.from(`${code} ${text.replace(/%/g, '%%')}\0`, 'utf8'));
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
