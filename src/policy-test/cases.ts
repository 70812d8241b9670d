/**
 * A policy-test file (`auditgate policy test CASES.yaml`): scripted sessions with the verdict
 * expected at each stage, read with file:line:col for every problem, like the config.
 *
 *   config: auditgate.yaml            # relative to this file; --config overrides it
 *   start: 2030-01-01T00:00:00Z       # the virtual clock at each case's start (the default)
 *   cases:
 *     - name: the 101st connection in an hour is refused
 *       sessions:
 *         - { client: 192.0.2.1, repeat: 100, every: 30s }
 *         - { client: 192.0.2.1, expect: { connect: tempfail by conn-per-ip } }
 *     - name: a one-session case may put the session's keys beside its name
 *       client: 2001:db8::1
 *       helo: mx.example.net
 *       from: a@example.org
 *       to: [b@example.net]
 *       expect: { connect: continue, mail: continue, rcpt: continue, data: continue }
 *
 * A session: client (address), front (smtp | milter | policy), at (from the case's start;
 * default: where the previous session of the case ended), repeat (N times), every (between
 * repetitions), helo, auth (a user whose attempt fails, or { user, ok: true }), from ('' is the
 * null sender), to (recipients the backend accepts), invalid (recipients the backend refuses,
 * sent after `to`; front milter: Postfix refuses them itself and tells the milter, so they have
 * rcpt_rejected but no rcpt verdict; front policy: the policy service is asked at RCPT and not
 * told of Postfix's refusal, so they have a rcpt verdict but no rcpt_rejected), data (default
 * true), size (bytes of the accepted message: `count: bytes`), keep_open (leave the session open
 * until the case ends: concurrent-session limits), expect: { stage: VERDICT or a list, one per recipient }.
 * VERDICT: continue | accept | tarpit | tempfail | reject | unreached, optionally "by POLICY".
 */
import fs from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { formatPath, locate } from '../config/load.js';
import { issuesToProblems } from '../config/problems.js';
import { custom, dropUndefined } from '../config/schema.js';
import type { PathProblem } from '../config/types.js';
import { ValueProblem, isPlainObject, parseDurationValue } from '../config/values.js';
import { parseClientAddress, type ClientAddress } from '../series/address.js';
import type { FrontKind } from '../audit/session.js';
import { AuditgateError } from '../errors.js';

export const EXPECT_STAGES = ['connect', 'helo', 'auth_fail', 'mail', 'rcpt', 'rcpt_rejected', 'data'] as const;
export type ExpectStage = (typeof EXPECT_STAGES)[number];
export const EXPECTED_ACTIONS = ['continue', 'accept', 'tarpit', 'tempfail', 'reject', 'unreached'] as const;

export interface Expected {
  action: (typeof EXPECTED_ACTIONS)[number];
  policy?: string;
}

export interface ScriptedSession {
  client: ClientAddress;
  front: FrontKind;
  /** ms from the case's start; undefined: where the previous session ended. */
  at?: number;
  repeat: number;
  /** ms between repetitions. */
  every: number;
  helo?: string;
  auth?: { user: string; ok: boolean };
  from?: string;
  to: string[];
  invalid: string[];
  data: boolean;
  /** Bytes of the message the backend accepts (`count: bytes`); undefined: not known. */
  size?: number;
  keepOpen: boolean;
  expect: Partial<Record<ExpectStage, Expected[]>>;
  /** Where it is in the file: `cases[2].sessions[1]`. */
  where: string;
}

export interface PolicyCase {
  name: string;
  sessions: ScriptedSession[];
}

export interface CasesFile {
  file: string;
  /** The config the file names (absolute), if it names one. */
  config?: string;
  start: number;
  cases: PolicyCase[];
}

export const DEFAULT_START = Date.UTC(2030, 0, 1);

const VERDICT_RE = new RegExp(`^(${EXPECTED_ACTIONS.join('|')})(?: by ([A-Za-z0-9_.:,-]{1,128}))?$`);

function parseExpected(v: unknown): Expected {
  const m = typeof v === 'string' ? VERDICT_RE.exec(v.trim()) : null;
  if (!m) throw new ValueProblem(`expected a verdict (${EXPECTED_ACTIONS.join(', ')}), optionally "by POLICY", got ${JSON.stringify(v)}`);
  return m[2] === undefined ? { action: m[1] as Expected['action'] } : { action: m[1] as Expected['action'], policy: m[2] };
}

const duration = custom((v) => parseDurationValue(v, false) * 1000);
const expectation = custom((v): Expected[] => {
  if (!Array.isArray(v)) return [parseExpected(v)];
  if (v.length === 0) throw new ValueProblem('expected a verdict, or a list of verdicts (one per recipient)');
  return v.map(parseExpected);
});
const text = z.string();
const list = z.union([text.transform((t) => [t]), z.array(text)]);

const sessionSchema = z.strictObject({
  client: custom((v) => {
    const c = typeof v === 'string' ? parseClientAddress(v.trim()) : undefined;
    if (!c) throw new ValueProblem(`expected an IPv4 or IPv6 address, got ${JSON.stringify(v)}`);
    return c;
  }),
  front: z.enum(['smtp', 'milter', 'policy']).default('smtp'),
  at: duration.optional(),
  repeat: z.number().int().min(1).max(1_000_000).default(1),
  every: duration.default(0),
  helo: text.min(1).optional(),
  auth: z.union([text.min(1).transform((user) => ({ user, ok: false })), z.strictObject({ user: text.min(1), ok: z.boolean().default(false) })]).optional(),
  from: text.optional(),
  to: list.default([]),
  invalid: list.default([]),
  data: z.boolean().default(true),
  size: z.number().int().min(0).optional(),
  keep_open: z.boolean().default(false),
  expect: z.strictObject(Object.fromEntries(EXPECT_STAGES.map((s) => [s, expectation.optional()])) as Record<ExpectStage, z.ZodOptional<typeof expectation>>).default({}),
});

/** Reads and checks a cases file; throws a CasesError listing every problem with file:line:col. */
export function loadCases(file: string): CasesFile {
  let source: string;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CasesError(file, [`${file}: cannot read the policy tests: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, uniqueKeys: true });
  const at = (offset: number | undefined, msg: string): string => {
    const { line, col } = lineCounter.linePos(offset ?? 0);
    return `${file}:${line}:${col} ${msg}`;
  };
  if (doc.errors.length) throw new CasesError(file, doc.errors.map((e) => at(e.pos[0], `YAML: ${e.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '')}`)));
  const problems: PathProblem[] = [];
  const result = parseCasesObject(doc.toJS({ maxAliasCount: 1000 }), file, problems);
  if (problems.length || !result) throw new CasesError(file, problems.map((p) => at(locate(doc, p.path), `${formatPath(p.path)}${p.path.length ? ': ' : ''}${p.message}`)));
  return result;
}

function parseCasesObject(raw: unknown, file: string, problems: PathProblem[]): CasesFile | undefined {
  if (!isPlainObject(raw)) {
    problems.push({ path: [], message: 'expected a map with a list of cases under "cases:"' });
    return undefined;
  }
  const head = z.strictObject({ config: text.min(1).optional(), start: z.iso.datetime({ offset: true }).optional(), cases: z.array(z.unknown()).min(1, { message: 'no cases' }) });
  const h = head.safeParse(raw, { reportInput: true });
  if (!h.success) {
    problems.push(...issuesToProblems(h.error.issues, [], head));
    return undefined;
  }
  const cases: PolicyCase[] = [];
  h.data.cases.forEach((c, i) => {
    const parsed = parseCase(c, ['cases', i], problems);
    if (parsed) cases.push(parsed);
  });
  const out: CasesFile = { file, start: h.data.start ? Date.parse(h.data.start) : DEFAULT_START, cases };
  if (h.data.config) out.config = path.resolve(path.dirname(path.resolve(file)), h.data.config);
  return out;
}

/** A case: a name and its sessions, or (one session) the session's keys beside the name. */
function parseCase(raw: unknown, at: Array<string | number>, problems: PathProblem[]): PolicyCase | undefined {
  if (!isPlainObject(raw)) {
    problems.push({ path: at, message: 'expected a map with a name and its sessions' });
    return undefined;
  }
  const { name, sessions, ...rest } = raw;
  if (typeof name !== 'string' || name.trim() === '') problems.push({ path: [...at, 'name'], message: 'every case needs a name' });
  let scripted: Array<{ raw: unknown; at: Array<string | number> }>;
  if (sessions === undefined) scripted = [{ raw: rest, at }];
  else if (Object.keys(rest).length) {
    problems.push({ path: [...at, Object.keys(rest)[0]!], message: 'a case has either "sessions:" or the keys of one session, not both' });
    return undefined;
  } else if (!Array.isArray(sessions) || sessions.length === 0) {
    problems.push({ path: [...at, 'sessions'], message: 'expected a list of sessions' });
    return undefined;
  } else scripted = sessions.map((s, j) => ({ raw: s, at: [...at, 'sessions', j] }));
  const out: ScriptedSession[] = [];
  for (const s of scripted) {
    const r = sessionSchema.safeParse(s.raw, { reportInput: true });
    if (!r.success) {
      problems.push(...issuesToProblems(r.error.issues, s.at, sessionSchema));
      continue;
    }
    const { keep_open, expect, ...v } = r.data;
    out.push(dropUndefined({ ...v, keepOpen: keep_open, expect: dropUndefined(expect) as ScriptedSession['expect'], where: formatPath(s.at) }));
  }
  return typeof name === 'string' && out.length === scripted.length ? { name: name.trim(), sessions: out } : undefined;
}

export class CasesError extends AuditgateError {
  constructor(
    file: string,
    readonly problems: readonly string[],
  ) {
    super('AG_POLICY_TEST', `invalid policy tests ${file}:\n  ${problems.join('\n  ')}`);
  }
}
