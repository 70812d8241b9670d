/** The policy front's verdict → action mapping. */
import { describe, expect, it } from 'vitest';
import { policyAction } from '../../../src/policy-service/connection.js';
import { encodeAction } from '../../../src/policy-service/codec.js';

describe('policy front: verdicts as actions', () => {
  it('continue is DUNNO, accept OK, refusals the reply with its enhanced code', () => {
    expect(policyAction({ action: 'continue' })).toBe('DUNNO');
    expect(policyAction({ action: 'accept' })).toBe('OK');
    const reply = { code: 421, enhanced: '4.7.0', text: 'Too many connections [0123456789ab@gw.test]' };
    expect(encodeAction(policyAction({ action: 'tempfail', reply, close: true })).toString()).toBe('action=421 4.7.0 Too many connections [0123456789ab@gw.test]\n\n');
    // a line break in a text would end the answer early: it cannot get through
    expect(encodeAction(policyAction({ action: 'reject', reply: { code: 550, enhanced: '5.7.1', text: 'a\nb' }, close: false })).toString()).toBe('action=550 5.7.1 a b\n\n');
  });
});
