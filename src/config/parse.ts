/**
 * Parsing the whole document: every section, series entry, record rule and policy on its own
 * (a broken policy does not hide the problems of the next one), then the cross-field checks.
 * Every problem carries the key path into the raw document (`['policies', 2, 'mask']`);
 * load.ts turns that into `file:line:col`.
 */
import path from 'node:path';
import type { z } from 'zod';
import { checkSemantics } from './checks.js';
import { checkControls } from './control-checks.js';
import { issuesToProblems, suggest } from './problems.js';
import { alertSchema, dropUndefined, policySchema, recordRuleSchema, seriesEntrySchema, topLevelSchemas } from './schema.js';
import type { AlertConfig, Config, PathProblem, PolicyConfig, RecordRule, SeriesConfig } from './types.js';
import { describeValue, isPlainObject } from './values.js';
import { SERIES_NAME_RE } from './vocabulary.js';

const TOP_LEVEL_KEYS = [
  'server',
  'relay',
  'state_dir',
  'log_dir',
  'persist_interval',
  'log_retention',
  'monitors',
  'store',
  'admin',
  'log',
  'journal',
  'series',
  'record',
  'policies',
  'protected',
  'alerts',
] as const;

/** A deep copy of `value` without the unknown keys that zod reported. */
function withoutKeys(value: unknown, issues: readonly z.core.$ZodIssue[]): unknown {
  const copy = structuredClone(value);
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    let node: unknown = copy;
    for (const seg of issue.path) node = (node as Record<PropertyKey, unknown> | undefined)?.[seg];
    if (isPlainObject(node)) for (const k of issue.keys) delete node[k];
  }
  return copy;
}

export interface ParseResult {
  config?: Config;
  problems: PathProblem[];
}

/**
 * Validates and normalizes a raw config object (what YAML parsing produced). Paths in the
 * config are resolved relative to the directory of `file`. Returns the config only when there
 * are no problems.
 */
export function parseConfigObject(raw: unknown, file: string): ParseResult {
  const absFile = path.resolve(file);
  const baseDir = path.dirname(absFile);
  const problems: PathProblem[] = [];
  const sections = topLevelSchemas(baseDir);

  if (!isPlainObject(raw)) {
    problems.push({ path: [], message: `the configuration must be a map of keys (server, relay, series, …), got ${describeValue(raw)}` });
    return { problems };
  }
  const known = TOP_LEVEL_KEYS as readonly string[];
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      const hint = suggest(key, known);
      problems.push({ path: [key], message: `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : `; known keys: ${known.join(', ')}`}` });
    }
  }

  const parse = <S extends z.ZodType>(schema: S, value: unknown, at: Array<string | number>): z.output<S> | undefined => {
    const r = schema.safeParse(value, { reportInput: true });
    if (r.success) return r.data;
    problems.push(...issuesToProblems(r.error.issues, at, schema));
    // Unknown keys only: still check the rest of the item (names, references, replies).
    if (r.error.issues.every((i) => i.code === 'unrecognized_keys')) {
      const again = schema.safeParse(withoutKeys(value, r.error.issues));
      if (again.success) return again.data;
    }
    return undefined;
  };

  const out: Partial<Omit<Config, 'file'>> = {};
  for (const key of ['server', 'relay', 'state_dir', 'log_dir', 'persist_interval', 'log_retention', 'monitors', 'store', 'admin', 'log', 'protected', 'journal'] as const) {
    // `server:` with every child commented out is null in YAML: treat it as absent.
    const v = parse(sections[key], raw[key] ?? undefined, [key]);
    if (v !== undefined) (out as Record<string, unknown>)[key] = v;
  }

  // series: entry by entry; an invalid entry is still "defined" (null) so references to it
  // do not add a second, misleading "unknown series" problem.
  const series = new Map<string, SeriesConfig | null>();
  if (raw.series !== undefined && raw.series !== null && !isPlainObject(raw.series)) {
    problems.push({ path: ['series'], message: `expected a map of series definitions, got ${describeValue(raw.series)}` });
  } else if (isPlainObject(raw.series)) {
    for (const [name, def] of Object.entries(raw.series)) {
      if (!SERIES_NAME_RE.test(name)) {
        problems.push({ path: ['series', name], message: `series name "${name}" must be 1-128 letters, digits, _ . : , -` });
      }
      const v = parse(seriesEntrySchema, def, ['series', name]);
      series.set(name, v ? { name, ...dropUndefined(v) } : null);
    }
  }

  const items = <T>(key: 'record' | 'policies' | 'alerts', schema: z.ZodType<T>): Array<T | null> => {
    const list = raw[key];
    if (list === undefined || list === null) return [];
    if (!Array.isArray(list)) {
      problems.push({ path: [key], message: `expected a list, got ${describeValue(list)}` });
      return [];
    }
    return list.map((item, i) => parse(schema, item, [key, i]) ?? null);
  };
  const record = items('record', recordRuleSchema);
  const policies = items('policies', policySchema);
  const alerts = items('alerts', alertSchema);

  checkSemantics({ server: out.server, relay: out.relay, series, record, policies, monitors: out.monitors, store: out.store, admin: out.admin }, problems);
  checkControls({ policies, alerts }, problems);

  if (problems.length > 0) return { problems };
  const config: Config = {
    file: absFile,
    warnings: [],
    ...(out as Omit<Config, 'file' | 'warnings' | 'series' | 'record' | 'policies' | 'alerts'>),
    series: Object.fromEntries([...series].map(([k, v]) => [k, v!])),
    record: record as RecordRule[],
    policies: policies as PolicyConfig[],
    alerts: alerts as AlertConfig[],
  };
  return { config, problems };
}
