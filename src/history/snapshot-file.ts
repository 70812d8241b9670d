/**
 * The series state file (`persist: true`): one JSON document per series, its header and the
 * snapshot of the series, and the check a file passes before it is restored.
 *
 *   {"format":"auditgate-series-state","format_version":1,"written_at":"2026-11-20T10:00:00.000Z",
 *    "written_at_ms":1795168800000,"series":"connections","snapshot":{"version":1,"name":"connections",
 *    "type":"cidr","interval":900,"windows":4,"window":1994632,"entries":[
 *   ["192.0.2.1",[3,0,1,0]],
 *   …
 *   ]}}
 *
 * A distinct series writes snapshot version 2: each entry adds the key's set per window, in the
 * JSON of DistinctSketch (the exact 64-bit hashes, or Redis's HLL string, base64), null where the
 * window is empty; the counts are the sets' sizes:
 *
 *   ["192.0.2.1",[2,0,0,0],[{"v":1,"exact":"C+1SymXfQqMQHCYF…"},null,null,null]]
 */
import { PersistError } from '../errors.js';
import type { SeriesSnapshot } from '../series/types.js';

export const STATE_FORMAT = 'auditgate-series-state';
export const STATE_FORMAT_VERSION = 1;

export interface StateFileHeader {
  format: typeof STATE_FORMAT;
  format_version: typeof STATE_FORMAT_VERSION;
  written_at: string;
  written_at_ms: number;
  series: string;
}

export interface StateFile extends StateFileHeader {
  snapshot: SeriesSnapshot;
}

/** Parses and checks a state file's text for series `name`. Throws with a readable reason. */
export function parseStateFile(text: string, name: string): StateFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PersistError(`not valid JSON (${errText(e)}); truncated or corrupt`);
  }
  if (!isObject(doc)) throw new PersistError('not a series state file (expected a JSON object)');
  if (doc.format !== STATE_FORMAT) throw new PersistError(`not a series state file (format is ${JSON.stringify(doc.format)})`);
  if (doc.format_version !== STATE_FORMAT_VERSION) {
    throw new PersistError(`unsupported format_version ${JSON.stringify(doc.format_version)} (this build reads ${STATE_FORMAT_VERSION})`);
  }
  if (doc.series !== name) throw new PersistError(`the file holds series ${JSON.stringify(doc.series)}, expected "${name}"`);
  const s = doc.snapshot;
  if (!isObject(s)) throw new PersistError('snapshot missing');
  if (s.version !== 1 && s.version !== 2) throw new PersistError(`unsupported snapshot version ${JSON.stringify(s.version)}`);
  if (s.name !== name) throw new PersistError(`snapshot is for series ${JSON.stringify(s.name)}, expected "${name}"`);
  if (typeof s.type !== 'string') throw new PersistError('snapshot type missing');
  if (typeof s.interval !== 'number' || !(s.interval > 0)) throw new PersistError('snapshot interval invalid');
  if (!Number.isInteger(s.windows) || (s.windows as number) < 1) throw new PersistError('snapshot windows invalid');
  if (!Number.isSafeInteger(s.window)) throw new PersistError('snapshot window invalid');
  if (s.store_prefix !== undefined && !Number.isInteger(s.store_prefix)) throw new PersistError('snapshot store_prefix invalid');
  if (!Array.isArray(s.entries)) throw new PersistError('snapshot entries missing');
  const entries = s.entries as unknown[];
  const distinct = s.version === 2;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (!Array.isArray(e) || e.length !== (distinct ? 3 : 2) || typeof e[0] !== 'string' || !Array.isArray(e[1])) {
      throw new PersistError(`snapshot entry ${i} is not [key, [counts…]${distinct ? ', [sets…]' : ''}]`);
    }
    for (const c of e[1] as unknown[]) {
      if (!Number.isSafeInteger(c)) throw new PersistError(`snapshot entry ${i} has a count that is not an integer`);
    }
    if (distinct && (!Array.isArray(e[2]) || e[2].length !== e[1].length || !e[2].every((set: unknown) => set === null || isObject(set)))) {
      throw new PersistError(`snapshot entry ${i} does not hold one set (or null) per window`);
    }
  }
  return doc as unknown as StateFile;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
