/**
 * zod issues → operator-facing problems at a key path: type names in words, unknown keys one
 * problem each with a "did you mean" hint.
 */
import type { z } from 'zod';
import type { PathProblem } from './types.js';
import { describeValue } from './values.js';

interface ZodDefLike {
  type: string;
  shape?: Record<string, unknown>;
  innerType?: unknown;
  in?: unknown;
  out?: unknown;
  element?: unknown;
  valueType?: unknown;
  options?: unknown[];
}

function defOf(schema: unknown): ZodDefLike | undefined {
  return (schema as { _zod?: { def?: ZodDefLike } } | undefined)?._zod?.def;
}

/** The keys a strict object accepts at `path` inside `schema` (for "did you mean" hints). */
function knownKeysAt(schema: unknown, p: ReadonlyArray<PropertyKey>): string[] {
  const def = defOf(schema);
  if (!def) return [];
  switch (def.type) {
    case 'object':
      if (p.length === 0) return Object.keys(def.shape ?? {});
      return knownKeysAt(def.shape?.[String(p[0])], p.slice(1));
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
      return knownKeysAt(def.innerType, p);
    case 'pipe': {
      const a = knownKeysAt(def.in, p);
      return a.length > 0 ? a : knownKeysAt(def.out, p);
    }
    case 'array':
      return p.length === 0 ? [] : knownKeysAt(def.element, p.slice(1));
    case 'record':
      return p.length === 0 ? [] : knownKeysAt(def.valueType, p.slice(1));
    case 'union':
      for (const o of def.options ?? []) {
        const k = knownKeysAt(o, p);
        if (k.length > 0) return k;
      }
      return [];
    default:
      return [];
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  if (best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3))) return best;
  // "logging" → "log", "tls_cert" → "tls": a known key the word starts with.
  return candidates.find((c) => c.length >= 3 && word.toLowerCase().startsWith(c.toLowerCase()));
}

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'text',
  boolean: 'true or false',
  object: 'a map',
  array: 'a list',
  tuple: 'a list',
  record: 'a map',
};

function issueMessage(issue: z.core.$ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  const missing = input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_value');
  if (missing) return 'required key is missing';
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describeValue(input)}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => String(v)).join(', ')}, got ${describeValue(input)}`;
    case 'too_small':
      if (issue.origin === 'array') return issue.message;
      if (issue.origin === 'string') return 'must not be empty';
      return `must be ${issue.inclusive ? 'at least' : 'greater than'} ${String(issue.minimum)}, got ${describeValue(input)}`;
    case 'too_big':
      if (issue.origin === 'array') return issue.message;
      return `must be ${issue.inclusive ? 'at most' : 'less than'} ${String(issue.maximum)}, got ${describeValue(input)}`;
    default:
      return issue.message;
  }
}

/** `unknown key "x"` with a "did you mean" hint, or the list of known keys. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const hint = suggest(key, known);
  const list = known.length > 0 ? `; known keys: ${known.join(', ')}` : '';
  return `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : list}`;
}

/** Turns zod issues into path problems; unknown keys become one problem each, at the key. */
export function issuesToProblems(issues: readonly z.core.$ZodIssue[], prefix: Array<string | number>, schema: unknown): PathProblem[] {
  const out: PathProblem[] = [];
  for (const issue of issues) {
    const p = [...prefix, ...issue.path.map((s) => (typeof s === 'number' ? s : String(s)))];
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, issue.path);
      for (const key of issue.keys) out.push({ path: [...p, key], message: unknownKeyMessage(key, known) });
      continue;
    }
    out.push({ path: p, message: issueMessage(issue) });
  }
  return out;
}
