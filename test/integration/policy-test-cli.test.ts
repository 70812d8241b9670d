/**
 * `auditgate policy test` as an operator's CI runs it (the compiled CLI in a child process): the
 * shipped cases pass against the default config, a wrong expectation fails with exit 1, a bad
 * cases file is refused with file:line:col and exit 2.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli.js');
const DEFAULT_CONFIG = join(ROOT, 'config/auditgate.yaml');

function run(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function casesFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ag-policy-test-')), 'cases.yaml');
  writeFileSync(file, text);
  return file;
}

describe('auditgate policy test', () => {
  it('the shipped config/policy-tests.yaml passes against the default config', () => {
    const r = run('policy', 'test', 'config/policy-tests.yaml');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toBe(`policy tests config/policy-tests.yaml with ${DEFAULT_CONFIG}`);
    const cases = lines.filter((l) => /^(ok|FAIL) /.test(l));
    expect(cases.length).toBeGreaterThanOrEqual(10);
    expect(cases.every((l) => l.startsWith('ok '))).toBe(true);
    expect(lines.at(-1)).toBe(`${cases.length} passed, 0 failed`);
  });

  it('a mismatch fails its case with what was expected and what came, and exits 1', () => {
    const file = casesFile(`cases:
  - name: the 5th connection is refused (wrong, the default allows 100 an hour)
    sessions:
      - { client: 192.0.2.1, repeat: 4 }
      - { client: 192.0.2.1, expect: { connect: tempfail by conn-per-ip } }
  - name: a single connection goes on
    client: "2001:db8::1"
    expect: { connect: continue }
`);
    const r = run('policy', 'test', file, '--config', DEFAULT_CONFIG);
    expect(r.code).toBe(1);
    expect(r.out).toContain('FAIL  the 5th connection is refused');
    expect(r.out).toContain('cases[0].sessions[1] (192.0.2.1 at +0s): connect: expected tempfail by conn-per-ip, got continue');
    expect(r.out).toContain('ok    a single connection goes on');
    expect(r.out.trim().split('\n').at(-1)).toBe('1 passed, 1 failed');
  });

  it('runs the config\'s protected networks and the bans its policies issue', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ag-policy-test-protected-'));
    const config = join(dir, 'auditgate.yaml');
    const text = readFileSync(DEFAULT_CONFIG, 'utf8');
    expect(text).toContain('\nprotected: []');
    writeFileSync(config, text.replace('\nprotected: []', '\nprotected: [192.0.2.0/25]'));
    const harvest = (client: string, expect: string) => `
      - { client: ${client}, from: h@example.com, invalid: [u1@example.net, u2@example.net, u3@example.net], data: false, repeat: 17, every: 1m }
      - { client: ${client}, from: h@example.com, to: [bob@example.net], expect: { rcpt: ${expect} } }
      - { client: ${client}, expect: { connect: ${expect === 'continue' ? 'continue' : 'tempfail by dha'} } }`;
    const file = casesFile(`cases:
  - name: a harvester outside the protected network is refused, then banned
    sessions:${harvest('192.0.2.200', 'tempfail by dha')}
  - name: a harvester inside it is counted, never refused nor banned
    sessions:${harvest('192.0.2.40', 'continue')}
`);
    const r = run('policy', 'test', file, '--config', config);
    expect(r.out).toContain('ok    a harvester outside the protected network is refused, then banned');
    expect(r.out).toContain('ok    a harvester inside it is counted, never refused nor banned');
    expect(r.code).toBe(0);
  });

  it('follows who refuses an invalid recipient and who is told, front by front', () => {
    const file = casesFile(`cases:
  - name: smtp - the engine passes each RCPT, then the backend refuses the invalid one
    client: 192.0.2.9
    front: smtp
    from: a@example.org
    to: [b@example.net, c@example.net]
    invalid: [nobody@example.net]
    expect: { rcpt: [continue, continue, continue], rcpt_rejected: continue, data: continue }
  - name: milter - Postfix refuses it itself and tells the milter
    client: 192.0.2.9
    front: milter
    from: a@example.org
    to: [b@example.net, c@example.net]
    invalid: [nobody@example.net]
    expect: { rcpt: [continue, continue], rcpt_rejected: continue, data: continue }
  - name: policy - Postfix asks the policy service, then refuses it without telling
    client: 192.0.2.9
    front: policy
    from: a@example.org
    to: [b@example.net]
    invalid: [nobody@example.net, nobody2@example.net]
    expect: { rcpt: [continue, continue, continue], rcpt_rejected: unreached, data: continue }
  - name: policy - no DATA when Postfix accepted none of the recipients
    client: 192.0.2.9
    front: policy
    from: a@example.org
    invalid: [nobody@example.net]
    expect: { rcpt: continue, data: unreached }
`);
    const r = run('policy', 'test', file, '--config', DEFAULT_CONFIG);
    expect(r.out.trim().split('\n').at(-1)).toBe('4 passed, 0 failed');
    expect(r.code).toBe(0);
  });

  it('a bad cases file is refused with file:line:col and key for every problem, exit 2', () => {
    const file = casesFile(`cases:
  - name: one
    client: 300.1.1.1
    expect: { connect: maybe }
  - name: two
    sessions:
      - { client: 192.0.2.1, repeat: 0, bogus: 1 }
`);
    const r = run('policy', 'test', file, '--config', DEFAULT_CONFIG);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${file}:3:5 cases[0].client: expected an IPv4 or IPv6 address, got "300.1.1.1"`);
    expect(r.err).toMatch(new RegExp(`${file}:4:\\d+ cases\\[0\\]\\.expect\\.connect: expected a verdict`));
    expect(r.err).toMatch(new RegExp(`${file}:7:\\d+ cases\\[1\\]\\.sessions\\[0\\]\\.repeat: `));
    expect(r.err).toMatch(new RegExp(`${file}:7:\\d+ cases\\[1\\]\\.sessions\\[0\\]\\.bogus: unknown key`));
    expect(r.out).toBe('');
  });
});
