/**
 * The policy engine: a pure function of compiled rules, the event context and counts.
 * Counts are fetched by the caller (one round trip for all rules of a stage) and passed in.
 */
import type { Stage } from '../config/vocabulary.js';
import type { CompiledPolicy } from './compile.js';
import { MAX_STRING_KEY_LENGTH } from '../series/string-series.js';
import { applyMask, formatPrefix, type ClientAddress } from '../series/address.js';
import { NET_MASKS } from '../config/vocabulary.js';

export interface EventContext {
  stage: Stage;
  /** The client's address, parsed once by the front; undefined when it has none we can count. */
  client: ClientAddress | undefined;
  /** Its text (`{ip}` in templates, logs); '' without an address. */
  ip: string;
  helo?: string;
  mail_from?: string;
  mail_from_domain?: string;
  rcpt?: string;
  rcpt_domain?: string;
  auth_user?: string;
  /** data stage: the message's accepted recipients (`count: rcpts`). */
  rcpts?: number;
  /** The message's size in bytes, once received (`count: bytes`). */
  bytes?: number;
}

/** `{net}` of each address object, worked out once (a session, or a replay's client, asks again and again). */
const NETS = new WeakMap<ClientAddress, string>();

/** `{net}`: the client's network, its /24 (IPv4) or /64 (IPv6); undefined without an address. */
export function clientNet(client: ClientAddress | undefined): string | undefined {
  if (!client) return undefined;
  let net = NETS.get(client);
  if (net === undefined) {
    const mask = NET_MASKS[client.family];
    const w = Uint32Array.from(client.words);
    applyMask(w, client.family, mask);
    net = formatPrefix(client.family, w, mask);
    NETS.set(client, net);
  }
  return net;
}

/** Templates split once (config has few): literal text at even indexes, placeholder names at odd ones. */
const TEMPLATES = new Map<string, readonly string[]>();
const MAX_TEMPLATES = 4096;

function partsOf(template: string): readonly string[] {
  let parts = TEMPLATES.get(template);
  if (parts === undefined) {
    parts = template.split(/\{([a-z_]+)\}/);
    if (TEMPLATES.size >= MAX_TEMPLATES) TEMPLATES.clear();
    TEMPLATES.set(template, parts);
  }
  return parts;
}

/** Expands {placeholders}; undefined when a placeholder has no value at this stage. */
export function expandTemplate(template: string, ctx: EventContext): string | undefined {
  const parts = partsOf(template);
  let out = parts[0]!;
  for (let i = 1; i < parts.length; i += 2) {
    const name = parts[i]!;
    const v = name === 'net' ? clientNet(ctx.client) : (ctx as unknown as Record<string, string | undefined>)[name];
    if (v === undefined || v === '') return undefined;
    out += v + parts[i + 1]!;
  }
  if (out.length === 0) return undefined;
  // A client controls these values (a 2 KB HELO): an over-long key is counted under its prefix
  // rather than refused, so it can neither evade the count nor break the stage's other adds.
  return out.length > MAX_STRING_KEY_LENGTH ? out.slice(0, MAX_STRING_KEY_LENGTH) : out;
}

export interface CountRequest {
  policy: CompiledPolicy;
  /** The series key: `ip/mask` for cidr types, the expanded template for strings. */
  key: string;
}

/** The policies of a stage that apply to this client, with the count each one needs (if any). */
export function applicable(rules: readonly CompiledPolicy[], ctx: EventContext): Array<{ policy: CompiledPolicy; key?: string }> {
  const out: Array<{ policy: CompiledPolicy; key?: string }> = [];
  const family = ctx.client?.family;
  for (const p of rules) {
    // A cidr series counts IPv4 clients only, cidr_ipv6 IPv6 clients only; neither a client without an address.
    if ((p.seriesType === 'cidr' && family !== 4) || (p.seriesType === 'cidr_ipv6' && family !== 6)) continue;
    if (p.client && !p.client(ctx.client)) continue;
    if (p.notClient && p.notClient(ctx.client)) continue;
    if (p.series === undefined) {
      out.push({ policy: p });
      continue;
    }
    let key: string | undefined;
    if (p.seriesType === 'string') key = p.keyTemplate ? expandTemplate(p.keyTemplate, ctx) : undefined;
    else key = p.mask !== undefined ? `${ctx.ip}/${p.mask}` : ctx.ip;
    if (key === undefined) continue; // nothing to count for this event (e.g. null sender domain)
    out.push({ policy: p, key });
  }
  return out;
}

export interface Firing {
  policy: CompiledPolicy;
  /** The count that crossed the threshold (undefined for client-list policies). */
  count?: number;
  key?: string;
}

export interface Decision {
  /** continue: no enforcing policy fired. */
  verdict: 'continue' | 'accept' | 'tempfail' | 'reject' | 'tarpit';
  fired?: Firing;
  /** Shadow policies that would have fired before the deciding one (and, for a protected client, refusing ones). */
  shadow: Firing[];
}

/**
 * Walks the applicable policies in order: the first enforcing policy that fires decides;
 * shadow policies that fire are collected and evaluation goes on. A count of undefined
 * (the store could not answer and on_error says skip) never fires. For a client in a protected
 * network (`protect`), policies that would refuse or slow it count as shadow ones: only an
 * accept can decide.
 */
export function evaluate(items: ReadonlyArray<{ policy: CompiledPolicy; key?: string }>, counts: ReadonlyArray<number | undefined>, protect = false): Decision {
  const shadow: Firing[] = [];
  for (let i = 0; i < items.length; i++) {
    const { policy, key } = items[i]!;
    let fires: boolean;
    let count: number | undefined;
    if (policy.series === undefined) fires = true;
    else {
      count = counts[i];
      fires = count !== undefined && policy.above !== undefined && count > policy.above;
    }
    if (!fires) continue;
    const firing: Firing = { policy };
    if (count !== undefined) firing.count = count;
    if (key !== undefined) firing.key = key;
    if (policy.shadow || (protect && policy.action !== 'accept')) {
      shadow.push(firing);
      continue;
    }
    return { verdict: policy.action, fired: firing, shadow };
  }
  return { verdict: 'continue', shadow };
}

/**
 * Seconds until a count over windows startv..endv falls to `above` or below, given the
 * per-window counts (index v = window v) and the time to the next boundary. Undefined
 * when it will not fall by ageing alone (e.g. startv > 0 windows keep filling).
 */
export function secondsUntilFree(perWindow: readonly number[], startv: number, endv: number, above: number, interval: number, msToBoundary: number): number | undefined {
  // After k boundaries, window v now is window v+k; the range startv..endv then holds the
  // current windows startv-k..endv-k (those < 0 are future windows, assumed empty).
  for (let k = 1; k <= endv + 1; k++) {
    let sum = 0;
    for (let v = Math.max(0, startv - k); v <= endv - k; v++) sum += perWindow[v] ?? 0;
    if (sum <= above) return Math.ceil(msToBoundary / 1000 + (k - 1) * interval);
  }
  return undefined;
}
