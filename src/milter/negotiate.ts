/**
 * Option negotiation: from the MTA's SMFIC_OPTNEG offer and what the front wants, the flags to
 * reply with, and which events the MTA will then send and wait for a reply to.
 *
 * The rules (pure; the front replies exactly where `awaitsReply` says):
 * - Version: min(MTA's, 6); below 2 is refused. Every flag we set is one the MTA offered
 *   (Sendmail drops a filter that asks for more).
 * - An event the front wants is always sent and always waits for our reply: we never ask for
 *   its "no reply" flag (SMFIP_NR_*). With NR the MTA goes on without reading an answer, so the
 *   front could neither refuse nor tarpit there, and a reply it sent anyway would be read as
 *   the answer to the next event: the stream would be out of step.
 * - An event the front does not want is switched off with SMFIP_NO* when offered (Postfix and
 *   Sendmail offer them all). Only when the MTA cannot be told to stop sending it, and offers
 *   the matching SMFIP_NR_*, do we ask for "no reply": the front would only ever have said
 *   "continue", so not answering loses nothing and saves a round trip per header or chunk.
 * - End of message, abort, quit and macros cannot be switched off; EOM always waits for a reply.
 * - Macro lists replace the MTA's own lists: with Postfix, sending any list empties every stage
 *   not listed. They need SMFIF_SETSYMLIST; when the MTA does not offer it they are dropped.
 */
import { MilterProtocolError } from '../errors.js';
import { SMFI_PROT_VERSION, SMFI_PROT_VERSION_MIN, SMFIF, SMFIP, type MilterCommand } from './protocol.js';
import type { MacroLists, OptnegReply } from './replies.js';

/** Events that can be switched off or left unanswered in negotiation. */
export type MilterEvent = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'header' | 'eoh' | 'body' | 'unknown';

const EVENT_FLAGS: Record<MilterEvent, { no: number; nr: number }> = {
  connect: { no: SMFIP.NOCONNECT, nr: SMFIP.NR_CONN },
  helo: { no: SMFIP.NOHELO, nr: SMFIP.NR_HELO },
  mail: { no: SMFIP.NOMAIL, nr: SMFIP.NR_MAIL },
  rcpt: { no: SMFIP.NORCPT, nr: SMFIP.NR_RCPT },
  data: { no: SMFIP.NODATA, nr: SMFIP.NR_DATA },
  header: { no: SMFIP.NOHDRS, nr: SMFIP.NR_HDR },
  eoh: { no: SMFIP.NOEOH, nr: SMFIP.NR_EOH },
  body: { no: SMFIP.NOBODY, nr: SMFIP.NR_BODY },
  unknown: { no: SMFIP.NOUNKNOWN, nr: SMFIP.NR_UNKN },
};

export const MILTER_EVENTS = Object.keys(EVENT_FLAGS) as MilterEvent[];

/** What the rate-limit front acts on (plus end of message, which is always sent). */
export const FRONT_EVENTS: readonly MilterEvent[] = ['connect', 'helo', 'mail', 'rcpt', 'data'];

export interface MilterOffer {
  version: number;
  actions: number;
  protocol: number;
}

export interface MilterWants {
  /** Events the front acts on and answers. Default FRONT_EVENTS. */
  events?: readonly MilterEvent[];
  /** Also send RCPTs the MTA rejected (SMFIP_RCPT_REJ; `{rcpt_mailer}` is "error"); needs 'rcpt'. */
  rejectedRcpts?: boolean;
  /** The front may answer SMFIR_SKIP (SMFIP_SKIP). */
  skip?: boolean;
  /** Header values keep their leading space (SMFIP_HDR_LEADSPC); needs 'header'. */
  headerLeadingSpace?: boolean;
  macros?: MacroLists;
}

export interface Negotiation {
  /** Encode with encodeOptneg(). */
  reply: OptnegReply;
  /** Events the MTA will send. */
  sends: ReadonlySet<MilterEvent>;
  /** Events the MTA waits for a reply to (a subset of `sends`). */
  awaitsReply: ReadonlySet<MilterEvent>;
  rejectedRcpts: boolean;
  skip: boolean;
  /** Macro lists were wanted but the MTA does not offer SMFIF_SETSYMLIST. */
  macrosDropped: boolean;
}

export function negotiate(offer: MilterOffer, wants: MilterWants = {}): Negotiation | MilterProtocolError {
  if (offer.version < SMFI_PROT_VERSION_MIN) {
    return new MilterProtocolError('unsupported-version', `MTA offers milter protocol version ${offer.version}, need ${SMFI_PROT_VERSION_MIN}..${SMFI_PROT_VERSION}`);
  }
  const offered = (flag: number) => (offer.protocol & flag) === flag;
  const wanted = new Set(wants.events ?? FRONT_EVENTS);
  let protocol = 0;
  const sends = new Set<MilterEvent>();
  const awaitsReply = new Set<MilterEvent>();
  for (const event of MILTER_EVENTS) {
    const { no, nr } = EVENT_FLAGS[event];
    if (wanted.has(event)) {
      sends.add(event);
      awaitsReply.add(event);
    } else if (offered(no)) {
      protocol |= no;
    } else {
      sends.add(event);
      if (offered(nr)) protocol |= nr;
      else awaitsReply.add(event);
    }
  }
  const rejectedRcpts = wants.rejectedRcpts === true && wanted.has('rcpt') && offered(SMFIP.RCPT_REJ);
  if (rejectedRcpts) protocol |= SMFIP.RCPT_REJ;
  const skip = wants.skip === true && offered(SMFIP.SKIP);
  if (skip) protocol |= SMFIP.SKIP;
  if (wants.headerLeadingSpace === true && wanted.has('header') && offered(SMFIP.HDR_LEADSPC)) protocol |= SMFIP.HDR_LEADSPC;

  const hasLists = wants.macros !== undefined && Object.values(wants.macros).some((l) => l !== undefined);
  const canList = (offer.actions & SMFIF.SETSYMLIST) !== 0;
  const reply: OptnegReply = { version: Math.min(offer.version, SMFI_PROT_VERSION), actions: hasLists && canList ? SMFIF.SETSYMLIST : 0, protocol: protocol >>> 0 };
  if (hasLists && canList) reply.macros = wants.macros!;
  return { reply, sends, awaitsReply, rejectedRcpts, skip, macrosDropped: hasLists && !canList };
}

/** Whether the MTA waits for a filter reply after this command (SMFIC_OPTNEG: the negotiation reply). */
export function expectsReply(n: Negotiation, c: MilterCommand): boolean {
  switch (c.type) {
    case 'optneg':
    case 'eom':
      return true;
    case 'macro':
    case 'abort':
    case 'quit':
    case 'quit_nc':
      return false;
    default:
      return n.awaitsReply.has(c.type);
  }
}
