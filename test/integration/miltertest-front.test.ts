/**
 * The milter front against Debian's miltertest (OpenDKIM's milter client, scripted in Lua):
 * negotiation flags, the macros the front reads ({auth_authen}), a refusal as SMFIR_REPLYCODE,
 * ABORT ending the transaction but not the session, and SMFIR_PROGRESS sent while a tarpit holds
 * an answer (miltertest reads it as the reply; Postfix waiting past its timeout thanks to it is
 * in postfix-milter.test.ts). QUIT_NC reuse, which miltertest cannot send, is in
 * milter-front.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MILTERTEST_PRELUDE, miltertest } from '../helpers/miltertest.js';
import { requireProgram } from '../helpers/programs.js';
import { startFronts, type FrontsGateway } from '../helpers/fronts.js';
import { waitFor } from '../helpers/wait.js';

const ok = requireProgram('miltertest', { pkg: 'miltertest', purpose: 'the milter front tests with miltertest' });

const BODY = `series:
  conn: { type: cidr, interval: 1h, windows: 2 }
  users: { type: string, interval: 1h, windows: 2 }
  rcpts: { type: cidr, interval: 1h, windows: 2 }
record:
  - { on: connect, series: conn }
  - { on: mail, series: users, key: "{auth_user}" }
  - { on: rcpt, series: rcpts }
policies:
  - { name: one-rcpt, on: rcpt, series: rcpts, mask: 32, above: 1, action: reject, client: [192.0.2.0/24] }
  - { name: slow-helo, on: helo, client: [203.0.113.0/24], action: tarpit, delay: 9s }
`;

describe.skipIf(!ok)('milter front driven by miltertest', () => {
  let gw: FrontsGateway;

  beforeAll(async () => {
    gw = await startFronts({ milter: true, body: BODY });
  });

  afterAll(async () => {
    await gw?.close();
  });

  const run = async (body: string) => {
    const r = await miltertest(`${MILTERTEST_PRELUDE}
local conn = mt.connect("inet:${gw.milterPort}@127.0.0.1", 5, 0.2)
if conn == nil then fail("mt.connect() failed") end
check("mt.negotiate", mt.negotiate(conn, nil, nil, nil))
${body}
check("mt.disconnect", mt.disconnect(conn))
mt.echo("MILTERTEST-OK")
`);
    expect(r.output).not.toContain('MILTERTEST-FAIL');
    expect(r.output).toContain('MILTERTEST-OK');
    expect(r.code, r.output).toBe(0);
  };

  it('negotiates, reads {auth_authen}, refuses with SMFIR_REPLYCODE, and goes on after ABORT', async () => {
    await run(`
for _, o in ipairs({ SMFIP_NOBODY, SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NOUNKNOWN }) do
  if not mt.test_option(conn, o) then fail("option " .. o .. " was not asked for") end
end
for _, o in ipairs({ SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NOMAIL, SMFIP_NORCPT, SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT, SMFIP_NR_DATA }) do
  if mt.test_option(conn, o) then fail("option " .. o .. " must not be asked for: the front answers every stage") end
end
check("mt.macro C", mt.macro(conn, SMFIC_CONNECT, "j", "mta.test"))
check("mt.conninfo", mt.conninfo(conn, "client.example.org", "192.0.2.7"))
expect_reply(conn, "connect", SMFIR_CONTINUE)
check("mt.helo", mt.helo(conn, "client.example.org"))
expect_reply(conn, "helo", SMFIR_CONTINUE)
check("mt.macro M", mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "alice", "i", "QID1"))
check("mt.mailfrom", mt.mailfrom(conn, "<sender@example.org>"))
expect_reply(conn, "mail", SMFIR_CONTINUE)
check("mt.rcptto", mt.rcptto(conn, "<one@example.net>"))
expect_reply(conn, "rcpt 1", SMFIR_CONTINUE)
check("mt.abort", mt.abort(conn))
-- the session goes on: a new transaction
check("mt.mailfrom 2", mt.mailfrom(conn, "<sender@example.org>"))
expect_reply(conn, "mail 2", SMFIR_CONTINUE)
check("mt.rcptto 2", mt.rcptto(conn, "<two@example.net>"))
expect_reply(conn, "rcpt 2 (over the limit)", SMFIR_REPLYCODE)
check("mt.rcptto 3", mt.rcptto(conn, "<three@example.net>"))
expect_reply(conn, "rcpt 3 (over the limit)", SMFIR_REPLYCODE)
check("mt.data", mt.data(conn))
expect_reply(conn, "data", SMFIR_CONTINUE)
check("mt.eom", mt.eom(conn))
expect_reply(conn, "eom", SMFIR_CONTINUE)
`);
    expect(await gw.gateway.store.count('conn', '192.0.2.7')).toBe(1);
    expect(await gw.gateway.store.count('users', 'alice')).toBe(2); // {auth_authen} at both MAILs
    expect(await gw.gateway.store.count('rcpts', '192.0.2.7')).toBe(3);
    const fired = gw.logs.filter((l) => l.policy === 'one-rcpt' && l.mode === 'enforce');
    expect(fired).toHaveLength(2);
    expect(new Set(fired.map((l) => l.cid)).size).toBe(1); // one session throughout
    await waitFor(() => gw.gateway.sessions.count('192.0.2.7') === 0);
  });

  it('answers a tarpitted HELO with SMFIR_PROGRESS first, and frees the hold as soon as miltertest leaves', async () => {
    const started = Date.now();
    // delay 9 s: progress every 3 s, before miltertest's 5 s read timeout; miltertest takes the
    // first packet as the reply (it has no "still working" handling) and leaves
    await run(`
mt.set_timeout(5)
check("mt.conninfo", mt.conninfo(conn, "slow.example.org", "203.0.113.9"))
expect_reply(conn, "connect", SMFIR_CONTINUE)
check("mt.helo", mt.helo(conn, "slow.example.org"))
expect_reply(conn, "helo (tarpitted)", string.byte("p")) -- SMFIR_PROGRESS (miltertest has no constant for it)
`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    await waitFor(() => gw.gateway.milter!.stats.holding === 0 && gw.gateway.sessions.count('203.0.113.9') === 0, 4000);
  });
});
