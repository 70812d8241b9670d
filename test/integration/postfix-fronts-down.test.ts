/**
 * The README's main.cf lines keep mail flowing while auditgate is down or restarting: with
 * milter_default_action = accept and a policy service default_action of DUNNO, a Postfix whose
 * milter and policy service do not answer still delivers (nothing bounced, nothing deferred).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostfixInstance } from '../helpers/postfix.js';
import { requireProgram } from '../helpers/programs.js';
import { freePort } from '../helpers/redis.js';
import { proxyV1, sendMail, startBackend, type Backend } from '../helpers/smtp.js';
import { waitFor } from '../helpers/wait.js';

const ok = requireProgram('postfix', { pkg: 'postfix', purpose: 'the "auditgate down" main.cf tests', root: true });

describe.skipIf(!ok)('Postfix with the README settings while auditgate is down', () => {
  let backend: Backend;
  let pf: PostfixInstance;
  let milter: number;
  let policy: number;

  beforeAll(async () => {
    backend = await startBackend();
    milter = await freePort(); // nothing listens on either
    policy = await freePort();
    const service = `inet:127.0.0.1:${policy}`;
    pf = await PostfixInstance.start({
      relayPort: backend.port,
      mainCf: {
        // as in README.md, "Milter and policy service"
        smtpd_milters: `inet:127.0.0.1:${milter}`,
        milter_protocol: '6',
        milter_default_action: 'accept',
        smtpd_delay_reject: 'no',
        smtpd_policy_service_default_action: 'DUNNO',
        smtpd_client_restrictions: `check_policy_service ${service}`,
        smtpd_helo_restrictions: `check_policy_service ${service}`,
        smtpd_sender_restrictions: `check_policy_service ${service}`,
        smtpd_recipient_restrictions: `permit_mynetworks, reject_unauth_destination, check_policy_service { ${service}, default_action=DUNNO }`,
        smtpd_end_of_data_restrictions: `check_policy_service ${service}`,
        // do not wait long for what is not there
        milter_connect_timeout: '2s',
        smtpd_policy_service_timeout: '5s',
        smtpd_policy_service_try_limit: '1',
        smtpd_policy_service_retry_delay: '1s', // Postfix's minimum
      },
    });
  });

  afterAll(async () => {
    await pf?.stop();
    await backend?.close();
  });

  it('accepts and delivers the message', async () => {
    const replies = await sendMail(pf.port, { preface: proxyV1('192.0.2.99'), body: 'Subject: down\r\n\r\nhello\r\n' });
    expect(
      replies.map((r) => r.code),
      pf.log(),
    ).toEqual([220, 250, 250, 250, 250, 221]);
    await waitFor(() => backend.messages.some((m) => m.raw.toString('latin1').includes('Subject: down')), 20_000);
    // Postfix did try both, and went on without them
    expect(pf.log()).toContain(`connect to Milter service inet:127.0.0.1:${milter}: Connection refused`);
    expect(pf.log()).toContain(`problem talking to server 127.0.0.1:${policy}: Connection refused`);
  });
});
