/**
 * Debian's miltertest (OpenDKIM's milter test client; a Lua script given with -s plays the MTA)
 * can be driven from a test: it talks to a tiny milter built on our codec that always answers
 * "continue", so both the codec and the harness are exercised.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMFIP } from '../../src/milter/protocol.js';
import { startStubMilter, type StubMilter } from '../helpers/milter-stub.js';
import { miltertest } from '../helpers/miltertest.js';
import { requireProgram } from '../helpers/programs.js';

const ok = requireProgram('miltertest', { pkg: 'miltertest', purpose: 'the miltertest harness tests' });

// miltertest (1.6.0) prints nothing when a script raises an error, it only exits 1: say why on
// stdout first.
const script = (port: number) => `
local function fail(msg)
  mt.echo("MILTERTEST-FAIL: " .. msg)
  error(msg)
end
local function check(what, err)
  if err ~= nil then fail(what .. " failed: " .. tostring(err)) end
end
local function expect_continue(conn, what)
  local r = mt.getreply(conn)
  if r ~= SMFIR_CONTINUE then fail(what .. ": reply was " .. string.format("%q", string.char(r)) .. ", not SMFIR_CONTINUE") end
end

local conn = mt.connect("inet:${port}@127.0.0.1", 5, 0.2)
if conn == nil then fail("mt.connect() failed") end
check("mt.negotiate", mt.negotiate(conn, nil, nil, nil))
if not mt.test_option(conn, SMFIP_NOBODY) then fail("the milter did not ask to skip the body") end
if not mt.test_option(conn, SMFIP_NOHDRS) then fail("the milter did not ask to skip headers") end

check("mt.conninfo", mt.conninfo(conn, "client.example.org", "192.0.2.7"))
expect_continue(conn, "connect")
check("mt.helo", mt.helo(conn, "client.example.org"))
expect_continue(conn, "helo")
check("mt.macro", mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "alice", "i", "QID123"))
check("mt.mailfrom", mt.mailfrom(conn, "<sender@example.org>", "SIZE=1234"))
expect_continue(conn, "mail")
check("mt.rcptto", mt.rcptto(conn, "<rcpt@example.net>"))
expect_continue(conn, "rcpt")
check("mt.data", mt.data(conn))
expect_continue(conn, "data")
check("mt.eom", mt.eom(conn))
expect_continue(conn, "eom")
check("mt.disconnect", mt.disconnect(conn))
mt.echo("MILTERTEST-OK")
`;

describe.skipIf(!ok)('miltertest drives a milter built on the codec', () => {
  let milter: StubMilter;

  beforeAll(async () => {
    milter = await startStubMilter();
  });

  afterAll(async () => {
    await milter?.close();
  });

  it('negotiates, passes every stage with "continue", and the milter decodes what was sent', async () => {
    const r = await miltertest(script(milter.port));
    expect(r.output).not.toContain('MILTERTEST-FAIL');
    expect(r.output).toContain('MILTERTEST-OK');
    expect(r.code, r.output).toBe(0);
    expect(milter.sessions).toHaveLength(1);
    const s = milter.sessions[0]!;
    expect(s.error).toBeUndefined();
    const offer = s.commands[0]!;
    expect(offer).toMatchObject({ type: 'optneg', version: 6 });
    expect(s.negotiation!.reply.protocol).toBe(SMFIP.NOBODY | SMFIP.NOHDRS | SMFIP.NOEOH | SMFIP.NOUNKNOWN);
    const seen = s.commands.filter((c) => c.type !== 'macro');
    expect(seen.map((c) => c.type)).toEqual(['optneg', 'connect', 'helo', 'mail', 'rcpt', 'data', 'eom', 'quit']);
    expect(seen[1]).toMatchObject({ type: 'connect', hostname: 'client.example.org', family: 'ipv4', address: '192.0.2.7' });
    expect(seen[2]).toEqual({ type: 'helo', name: 'client.example.org' });
    expect(seen[3]).toEqual({ type: 'mail', sender: '<sender@example.org>', args: ['SIZE=1234'] });
    expect(seen[4]).toEqual({ type: 'rcpt', recipient: '<rcpt@example.net>', args: [] });
    const macros = s.commands.find((c) => c.type === 'macro' && c.command === 'M');
    expect(macros).toEqual({
      type: 'macro',
      command: 'M',
      macros: new Map([
        ['{auth_authen}', 'alice'],
        ['i', 'QID123'],
      ]),
    });
  });
});
