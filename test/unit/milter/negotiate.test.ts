/**
 * Milter option negotiation: what we ask of Postfix's real offer, of older and partial offers,
 * and (fast-check) that no offer ever makes us skip the reply to a stage the front answers.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MilterProtocolError } from '../../../src/errors.js';
import { negotiate, expectsReply, MILTER_EVENTS, type MilterEvent, type Negotiation } from '../../../src/milter/negotiate.js';
import { SMFIF, SMFIP } from '../../../src/milter/protocol.js';

const POSTFIX_OFFER = { version: 6, actions: 0x1ff, protocol: 0x1fffff };

function ok(n: Negotiation | MilterProtocolError): Negotiation {
  if (n instanceof MilterProtocolError) throw n;
  return n;
}

describe('milter option negotiation', () => {
  it("against Postfix's offer: skip body, headers, EOH and unknown; answer everything else; no NR flags", () => {
    const n = ok(negotiate(POSTFIX_OFFER));
    expect(n.reply).toEqual({ version: 6, actions: 0, protocol: SMFIP.NOBODY | SMFIP.NOHDRS | SMFIP.NOEOH | SMFIP.NOUNKNOWN });
    expect([...n.awaitsReply]).toEqual(['connect', 'helo', 'mail', 'rcpt', 'data']);
    expect([...n.sends]).toEqual(['connect', 'helo', 'mail', 'rcpt', 'data']);
    expect(expectsReply(n, { type: 'eom' })).toBe(true);
    expect(expectsReply(n, { type: 'macro', command: 'C', macros: new Map() })).toBe(false);
    expect(expectsReply(n, { type: 'abort' })).toBe(false);
    expect(expectsReply(n, { type: 'helo', name: 'x' })).toBe(true);
  });

  it('asks for "no reply" only for unwanted events the MTA cannot switch off', () => {
    const offer = { version: 6, actions: 0, protocol: SMFIP.NR_HDR | SMFIP.NR_CONN | SMFIP.NOBODY | SMFIP.NR_BODY | SMFIP.NOCONNECT };
    const n = ok(negotiate(offer));
    expect(n.reply.protocol).toBe(SMFIP.NR_HDR | SMFIP.NOBODY);
    expect(n.sends.has('header')).toBe(true);
    expect(expectsReply(n, { type: 'header', name: 'a', value: 'b' })).toBe(false);
    expect(expectsReply(n, { type: 'eoh' })).toBe(true); // no NOEOH and no NR_EOH offered: we answer
    expect(expectsReply(n, { type: 'connect', hostname: 'h', family: 'unknown' })).toBe(true);
  });

  it('an older MTA: its version, only its flags', () => {
    const n = ok(negotiate({ version: 2, actions: 0xf, protocol: 0x7f }));
    expect(n.reply).toEqual({ version: 2, actions: 0, protocol: SMFIP.NOBODY | SMFIP.NOHDRS | SMFIP.NOEOH });
    expect(n.awaitsReply.has('unknown')).toBe(true);
    expect(ok(negotiate({ version: 7, actions: 0, protocol: 0 })).reply.version).toBe(6);
    expect(negotiate({ version: 1, actions: 0, protocol: 0 })).toMatchObject({ reason: 'unsupported-version' });
  });

  it('macro lists need SMFIF_SETSYMLIST; rejected RCPTs and SKIP only when offered and asked', () => {
    const macros = { ENVFROM: ['{auth_authen}'] };
    expect(ok(negotiate(POSTFIX_OFFER, { macros })).reply).toMatchObject({ actions: SMFIF.SETSYMLIST, macros });
    const dropped = ok(negotiate({ ...POSTFIX_OFFER, actions: 0xff }, { macros }));
    expect(dropped.macrosDropped).toBe(true);
    expect(dropped.reply.actions).toBe(0);
    expect(dropped.reply.macros).toBeUndefined();
    const r = ok(negotiate(POSTFIX_OFFER, { rejectedRcpts: true, skip: true }));
    expect(r.reply.protocol & (SMFIP.RCPT_REJ | SMFIP.SKIP)).toBe(SMFIP.RCPT_REJ | SMFIP.SKIP);
    expect(ok(negotiate({ ...POSTFIX_OFFER, protocol: 0x3ff }, { rejectedRcpts: true, skip: true })).reply.protocol & (SMFIP.RCPT_REJ | SMFIP.SKIP)).toBe(0);
  });

  it('property: only offered flags, never "no reply" for a wanted event, every sent event answered or NR', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 6 }), fc.nat({ max: 0x1fffff }), fc.subarray([...MILTER_EVENTS]), (version, protocol, events: MilterEvent[]) => {
        const n = ok(negotiate({ version, actions: 0x1ff, protocol }, { events }));
        expect((n.reply.protocol & ~protocol) >>> 0).toBe(0);
        for (const e of events) {
          expect(n.awaitsReply.has(e)).toBe(true);
          expect(n.sends.has(e)).toBe(true);
        }
        const nr: Record<string, number> = { connect: SMFIP.NR_CONN, helo: SMFIP.NR_HELO, mail: SMFIP.NR_MAIL, rcpt: SMFIP.NR_RCPT, data: SMFIP.NR_DATA, header: SMFIP.NR_HDR, eoh: SMFIP.NR_EOH, body: SMFIP.NR_BODY, unknown: SMFIP.NR_UNKN };
        for (const e of MILTER_EVENTS) {
          const noReply = (n.reply.protocol & nr[e]!) !== 0;
          if (n.sends.has(e)) expect(n.awaitsReply.has(e)).toBe(!noReply);
          else expect(noReply).toBe(false);
        }
      }),
    );
  });
});
