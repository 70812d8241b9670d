/**
 * Debian's miltertest (OpenDKIM's milter test client): runs a Lua script that plays the MTA.
 * miltertest 1.6 prints nothing when a script raises an error, it only exits 1: scripts say
 * why on stdout first (MILTERTEST_PRELUDE's fail()).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { programPath } from './programs.js';

/** Runs miltertest on a script; bounded by a kill timer. */
export function miltertest(script: string, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auditgate-miltertest-'));
  const file = path.join(dir, 'test.lua');
  fs.writeFileSync(file, script);
  return new Promise((resolve) => {
    const p = spawn(programPath('miltertest'), ['-s', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
    p.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('close', (code) => {
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, output });
    });
  });
}

/** Lua helpers: fail(msg) (echoes MILTERTEST-FAIL first), check(what, err), expect_reply(conn, what, SMFIR_x). */
export const MILTERTEST_PRELUDE = `
local function fail(msg)
  mt.echo("MILTERTEST-FAIL: " .. msg)
  error(msg)
end
local function check(what, err)
  if err ~= nil then fail(what .. " failed: " .. tostring(err)) end
end
local function expect_reply(conn, what, want)
  local r = mt.getreply(conn)
  if r ~= want then fail(what .. ": reply was " .. string.format("%q", string.char(r)) .. ", not " .. string.format("%q", string.char(want))) end
end
`;
