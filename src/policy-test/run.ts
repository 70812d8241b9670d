/**
 * Runs policy-test cases (cases.ts) through a config's engine on a virtual clock: each case on a
 * fresh engine (empty series, no open sessions) starting at the file's `start`; each scripted
 * session driven as a client would go through the SMTP proxy (replay/driver.ts), and the verdict
 * at each stage checked against the expected one.
 */
import type { Config } from '../config/types.js';
import type { Verdict } from '../audit/session.js';
import { LineCapture } from '../replay/capture.js';
import { refusal, settle, SessionDriver } from '../replay/driver.js';
import { virtualEngine, type VirtualEngine } from '../replay/virtual-engine.js';
import type { CasesFile, ExpectStage, Expected, PolicyCase, ScriptedSession } from './cases.js';

export interface CaseResult {
  name: string;
  passed: boolean;
  /** Stage verdicts checked, and those that did not match. */
  checks: number;
  mismatches: number;
  /** The first few mismatches, described. */
  failures: string[];
}

/** What a stage answered: a verdict and the policy that decided it, or that it was never reached. */
interface Got {
  action: string;
  policy?: string;
}

const SHOWN_FAILURES = 3;

const describe = (e: Got | Expected): string => `${e.action}${e.policy ? ` by ${e.policy}` : ''}`;

function offset(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `+${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `+${ms / 60_000}m`;
  return `+${ms / 1000}s`;
}

export async function runCases(config: Config, file: CasesFile): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const [i, c] of file.cases.entries()) out.push(await runCase(config, c, file.start, `t${i + 1}`));
  return out;
}

async function runCase(config: Config, c: PolicyCase, start: number, tag: string): Promise<CaseResult> {
  const capture = new LineCapture();
  const ve = virtualEngine(config, start, (l) => capture.offer(l), true);
  const result: CaseResult = { name: c.name, passed: true, checks: 0, mismatches: 0, failures: [] };
  const fail = (text: string): void => {
    result.passed = false;
    result.mismatches++;
    if (result.failures.length < SHOWN_FAILURES) result.failures.push(text);
  };
  const open: SessionDriver[] = [];
  let next = 0;
  let n = 0;
  for (const s of c.sessions) {
    const at = s.at ?? next;
    for (let r = 0; r < s.repeat; r++) {
      const t = at + r * s.every;
      if (start + t < ve.clock.now()) {
        fail(`${s.where}: at ${offset(t)} is before the session that ran last (${offset(ve.clock.now() - start)}): sessions run in time order`);
        return result;
      }
      ve.clock.set(start + t);
      const got = await runSession(ve, capture, s, `${tag}-${++n}`, open);
      const where = `${s.where}${s.repeat > 1 ? ` repetition ${r + 1} of ${s.repeat}` : ''} (${s.client.text} at ${offset(t)})`;
      for (const [stage, expected] of Object.entries(s.expect) as Array<[ExpectStage, Expected[]]>) {
        const answers = got.get(stage) ?? [];
        if (expected.length > 1 && expected.length !== answers.length) {
          fail(`${where}: ${stage}: ${expected.length} verdicts expected, the session ran it ${answers.length} times`);
          continue;
        }
        const each = answers.length ? answers : [{ action: 'unreached' }];
        each.forEach((a, k) => {
          const e = expected.length > 1 ? expected[k]! : expected[0]!;
          result.checks++;
          if (a.action !== e.action || (e.policy !== undefined && a.policy !== e.policy)) {
            fail(`${where}: ${stage}${each.length > 1 ? `[${k}]` : ''}: expected ${describe(e)}, got ${describe(a)}`);
          }
        });
      }
    }
    next = at + (s.repeat - 1) * s.every;
  }
  for (const d of open) d.close();
  return result;
}

/** One scripted session; the verdicts by stage, in order. */
async function runSession(ve: VirtualEngine, capture: LineCapture, s: ScriptedSession, cid: string, open: SessionDriver[]): Promise<Map<ExpectStage, Got[]>> {
  const got = new Map<ExpectStage, Got[]>();
  const d = new SessionDriver(ve.engine, s.front, cid, s.client);
  const decide = async (stage: ExpectStage, run: () => Verdict | undefined | Promise<Verdict | undefined>): Promise<Verdict | undefined> => {
    capture.expect(cid, stage);
    const v = await run();
    if (v && refusal(v)) await settle();
    const line = capture.take();
    const answer: Got = v ? { action: v.action } : { action: 'unreached' };
    if (v && line?.y !== undefined) answer.policy = line.y;
    got.set(stage, [...(got.get(stage) ?? []), answer]);
    return v;
  };
  let authUser: string | undefined;
  await decide('connect', () => d.stage('connect'));
  if (s.helo !== undefined) {
    d.facts({ helo: s.helo });
    await decide('helo', () => d.stage('helo'));
  }
  if (s.auth) {
    const { user, ok } = s.auth;
    d.facts({ helo: s.helo });
    await decide('auth_fail', () => d.auth(user));
    if (ok && d.authOk()) authUser = user.toLowerCase();
  }
  if (s.from !== undefined) {
    const facts = { helo: s.helo, authUser, mailFrom: s.from };
    d.facts(facts);
    await decide('mail', () => d.stage('mail'));
    // who refuses an invalid recipient, and who is told: the backend after the engine let it
    // through (smtp); Postfix itself, telling the milter (rcpt_rejected only); Postfix after
    // asking the policy service, which is not told (and gets Postfix's count at DATA)
    let accepted = 0;
    for (const rcpt of [...s.to, ...s.invalid]) {
      d.facts({ ...facts, rcpt });
      const invalid = s.invalid.includes(rcpt);
      if (!(invalid && s.front === 'milter')) {
        const v = await decide('rcpt', () => d.stage('rcpt'));
        if (!invalid && v && !refusal(v)) accepted++;
      }
      if (invalid && s.front !== 'policy') await decide('rcpt_rejected', () => d.rcptRejected());
    }
    if (s.data) {
      d.facts(s.front === 'policy' ? { ...facts, rcpts: accepted } : facts);
      const v = await decide('data', () => d.stage('data'));
      if (v && !refusal(v)) d.delivered(s.size);
    }
  }
  await settle();
  if (s.keepOpen) open.push(d);
  else d.close();
  return got;
}
