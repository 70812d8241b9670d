/**
 * The ban file under `state_dir` (`bans.state`: a name no series state file can have, those end
 * in `.json`): one JSON document, a header then one ban or history entry per line.
 *
 *   {"format":"auditgate-bans","format_version":1,"written_at":"2026-11-20T10:00:00.000Z","written_at_ms":1795168800000,
 *    "bans":[
 *   {"prefix":"192.0.2.0/24","since":1795168700000,"until":1795169300000,"policy":"dha-ban","level":0},
 *   …
 *   ],"history":[
 *   ["192.0.2.0/24",1795168700000,0,1795255700000],
 *   …
 *   ]}
 */
import { PersistError } from '../errors.js';
import type { Ban, BanHistory } from './ban-list.js';
import { normalizeBanPrefix } from './ban-list.js';

export const BAN_FILE = 'bans.state';
export const BAN_FORMAT = 'auditgate-bans';
export const BAN_FORMAT_VERSION = 1;

/** The document up to the first ban (what comes before the entries). */
export function banFileHead(nowMs: number): string {
  const header = { format: BAN_FORMAT, format_version: BAN_FORMAT_VERSION, written_at: new Date(nowMs).toISOString(), written_at_ms: nowMs };
  return `${JSON.stringify(header).slice(0, -1)},"bans":[`;
}

export const banLine = (b: Ban): string => JSON.stringify(b);
export const historyLine = ([prefix, h]: [string, BanHistory]): string => JSON.stringify([prefix, h.at, h.level, h.keepUntil]);

export interface BanFileContent {
  writtenAt: number;
  bans: Ban[];
  history: Array<[string, BanHistory]>;
}

/** Parses and checks a ban file's text. Throws a PersistError with a readable reason. */
export function parseBanFile(text: string): BanFileContent {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PersistError(`not valid JSON (${e instanceof Error ? e.message : String(e)}); truncated or corrupt`);
  }
  if (!isObject(doc) || doc.format !== BAN_FORMAT) throw new PersistError('not a ban file (format is not "auditgate-bans")');
  if (doc.format_version !== BAN_FORMAT_VERSION) throw new PersistError(`unsupported format_version ${JSON.stringify(doc.format_version)} (this build reads ${BAN_FORMAT_VERSION})`);
  if (!Array.isArray(doc.bans) || !Array.isArray(doc.history)) throw new PersistError('bans or history missing');
  const time = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  const bans = doc.bans.map((b: unknown, i): Ban => {
    const ok = isObject(b) && typeof b.prefix === 'string' && normalizeBanPrefix(b.prefix)?.prefix === b.prefix && time(b.since) && time(b.until) && typeof b.policy === 'string' && time(b.level);
    if (!ok) throw new PersistError(`ban ${i} is not {prefix, since, until, policy, level} with a normalized prefix`);
    const ban: Ban = { prefix: b.prefix as string, since: b.since as number, until: b.until as number, policy: b.policy as string, level: b.level as number };
    return typeof b.node === 'string' ? { ...ban, node: b.node } : ban;
  });
  const history = doc.history.map((h: unknown, i): [string, BanHistory] => {
    if (!Array.isArray(h) || h.length !== 4 || typeof h[0] !== 'string' || !time(h[1]) || !time(h[2]) || !time(h[3])) {
      throw new PersistError(`history entry ${i} is not [prefix, at, level, keepUntil]`);
    }
    return [h[0], { at: h[1], level: h[2], keepUntil: h[3] }];
  });
  return { writtenAt: time(doc.written_at_ms) ? doc.written_at_ms : 0, bans, history };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
