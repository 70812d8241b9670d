/** The milter front's pure parts: verdict → reply bytes, the progress interval, envelope addresses. */
import { describe, expect, it } from 'vitest';
import { envelopeAddress, milterReply, progressEvery } from '../../../src/milter/connection.js';
import { encodeContinue, encodeReplyCode } from '../../../src/milter/replies.js';
import { MilterReplyDecoder, replyCodeOf } from '../../../src/milter/reply-decoder.js';

const reply = { code: 451, enhanced: '4.7.1', text: 'Rate limit exceeded (100% full) [0123456789ab@gw.test]' };

describe('milter front: verdicts as replies', () => {
  it('continue and accept are SMFIR_CONTINUE; refusals are SMFIR_REPLYCODE with code, enhanced code and text', () => {
    expect(milterReply({ action: 'continue' })).toEqual(encodeContinue());
    expect(milterReply({ action: 'accept' })).toEqual(encodeContinue());
    const bytes = milterReply({ action: 'tempfail', reply, close: false });
    expect(bytes).toEqual(encodeReplyCode(451, '4.7.1 Rate limit exceeded (100% full) [0123456789ab@gw.test]'));
    const [decoded] = new MilterReplyDecoder().push(bytes);
    expect(replyCodeOf(decoded!)).toEqual({ code: 451, text: '4.7.1 Rate limit exceeded (100% full) [0123456789ab@gw.test]' });
    // a control character in a policy's own text cannot break the packet
    expect(replyCodeOf(new MilterReplyDecoder().push(milterReply({ action: 'reject', reply: { ...reply, code: 550, enhanced: '5.7.1', text: 'a\tb' }, close: false }))[0]!)).toEqual({ code: 550, text: '5.7.1 a b' });
  });

  it('sends progress every third of the delay, 1 to 10 s apart', () => {
    expect(progressEvery(900)).toBe(1000);
    expect(progressEvery(6000)).toBe(2000);
    expect(progressEvery(120_000)).toBe(10_000);
  });

  it('takes the address out of its angle brackets; <> is the null sender', () => {
    expect(envelopeAddress('<a@b.test>')).toBe('a@b.test');
    expect(envelopeAddress('<>')).toBe('');
    expect(envelopeAddress(' a@b.test ')).toBe('a@b.test');
  });
});
