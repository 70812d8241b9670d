/**
 * The Lua scripts of distinct series in Redis (redis-distinct.ts; key layout in redis-layout.ts).
 * Every key of one call belongs to one series, hence to one Redis Cluster slot ({series}).
 *
 * A set of values (a leaf, or a prefix at a kept mask, in one window) is a Redis SET of the
 * values while it holds at most EXACT (64) of them, then a HyperLogLog (PFADD of the same
 * values; the SET is deleted): the rule DistinctSketch follows in process, so a count is exact
 * where the process counts exactly and equals PFCOUNT of the same values above.
 */

import { MARK_WINDOW } from './redis-scripts.js';

/** Lua: adds ARGV[from .. from + n - 1] to the set `s`, or to the HyperLogLog `h` once the set passed `exact`. */
const ADD_VALUES = `
local function addvals(s, h, from, n, exact, ttl)
  local last = from + n - 1
  if redis.call('EXISTS', h) == 1 then
    for j = from, last, 500 do redis.call('PFADD', h, unpack(ARGV, j, math.min(j + 499, last))) end
    redis.call('EXPIRE', h, ttl)
    return
  end
  for j = from, last, 500 do redis.call('SADD', s, unpack(ARGV, j, math.min(j + 499, last))) end
  if redis.call('SCARD', s) > exact then
    local m = redis.call('SMEMBERS', s)
    for j = 1, #m, 500 do redis.call('PFADD', h, unpack(m, j, math.min(j + 499, #m))) end
    redis.call('DEL', s)
    redis.call('EXPIRE', h, ttl)
  else
    redis.call('EXPIRE', s, ttl)
  end
end
`;

/**
 * Lua: union() gathers the sets and HyperLogLogs `srcs` ({s, h, s, h, ...}; a pair's HLL when it
 * exists, else its set) and the `extra` values; count() is the size of that union: exact at most
 * `exact` values from sets alone, else PFCOUNT of the HLLs merged with the values, in `tmp`.
 */
const UNION = `
local function union(srcs, extra)
  local seen, vals, n, hlls = {}, {}, 0, {}
  for p = 1, #srcs, 2 do
    if redis.call('EXISTS', srcs[p + 1]) == 1 then
      hlls[#hlls + 1] = srcs[p + 1]
    else
      for _, v in ipairs(redis.call('SMEMBERS', srcs[p])) do
        if not seen[v] then seen[v] = true; n = n + 1; vals[n] = v end
      end
    end
  end
  for _, v in ipairs(extra) do
    if not seen[v] then seen[v] = true; n = n + 1; vals[n] = v end
  end
  return vals, n, hlls
end
local function count(srcs, extra, exact, tmp)
  local vals, n, hlls = union(srcs, extra)
  if #hlls == 0 and n <= exact then return n end
  redis.call('DEL', tmp)
  for j = 1, #hlls, 500 do redis.call('PFMERGE', tmp, unpack(hlls, j, math.min(j + 499, #hlls))) end
  for j = 1, n, 500 do redis.call('PFADD', tmp, unpack(vals, j, math.min(j + 499, n))) end
  local c = redis.call('PFCOUNT', tmp)
  redis.call('DEL', tmp)
  return c
end
`;

/**
 * Applies one batch of a distinct series, at most once (as ADD_LUA does for counts).
 *
 * KEYS[1]  the node's seq key; then per window: leaf index hash, marker hash, and a (set, hll)
 *          key pair per leaf, then per aggregate, in ARGV order
 * ARGV[1]  batch sequence number; ARGV[2] ttl seconds; ARGV[3] the writer's mask set;
 *          ARGV[4] max_keys; ARGV[5] EXACT
 * then per window: nLeaf, nAgg; per leaf: field, nValues, values…; per aggregate: nValues, values…
 *
 * The leaf index hash counts values added per leaf (which leaves a window holds, for counts at
 * masks not kept, top and removal); it holds at most max_keys leaves: a new leaf past it is not
 * stored (its values still reach the aggregates) and is counted in the marker hash's "#o".
 *
 * Returns {1, leaves dropped} when applied, {0, 0} when skipped as a duplicate.
 */
export const ADD_DISTINCT_LUA = `${MARK_WINDOW}${ADD_VALUES}
local seq = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if seq <= last then return {0, 0} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
local masks, maxk, exact = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local dropped = 0
local i, k = 6, 2
while k <= #KEYS do
  local leaf, agg = KEYS[k], KEYS[k + 1]
  k = k + 2
  local nl, na = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  local n = redis.call('HLEN', leaf)
  local over = 0
  for _ = 1, nl do
    local field, nv = ARGV[i], tonumber(ARGV[i + 1])
    if n >= maxk and redis.call('HEXISTS', leaf, field) == 0 then
      over = over + 1
    else
      if redis.call('HINCRBY', leaf, field, nv) == nv then n = n + 1 end
      addvals(KEYS[k], KEYS[k + 1], i + 2, nv, exact, ttl)
    end
    k = k + 2
    i = i + 2 + nv
  end
  if nl > 0 then redis.call('EXPIRE', leaf, ttl) end
  for _ = 1, na do
    local nv = tonumber(ARGV[i])
    addvals(KEYS[k], KEYS[k + 1], i + 1, nv, exact, ttl)
    k = k + 2
    i = i + 1 + nv
  end
  markwindow(agg, masks, na, over, ttl)
  dropped = dropped + over
end
return {1, dropped}
`;

/**
 * Counts several queries of one distinct series: each the union of (set, hll) pairs and of the
 * asking node's values Redis has not applied yet.
 *
 * KEYS[1]  scratch key (the series' tmp); KEYS[2] the asking node's seq key; then per query:
 *          its marker hashes (kind 'a', one per window), then its (set, hll) pairs
 * ARGV[1]  EXACT; then per query: kind ('l' leaves | 'a' a kept mask), mask, nMarkers, nPairs,
 *          nExtra, then (batch seq, value) per extra value: taken when its batch is above the last
 *          one applied (read here, atomically), or 0 (not sent yet)
 *
 * Returns one count per query; -1 for an 'a' query some writer of a window did not keep the mask
 * for (the caller unites the leaves instead).
 */
export const COUNT_DISTINCT_LUA = `${UNION}
local exact = tonumber(ARGV[1])
local applied = tonumber(redis.call('GET', KEYS[2]) or '0')
local out = {}
local i, k = 2, 3
while i <= #ARGV do
  local kind, mask = ARGV[i], ARGV[i + 1]
  local nm, np, ne = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  i = i + 5
  local kept = true
  for m = k, k + nm - 1 do
    local r = redis.call('HMGET', KEYS[m], '#m', '#x')
    if r[1] and (r[2] or not string.find(',' .. r[1] .. ',', ',' .. mask .. ',', 1, true)) then kept = false end
  end
  k = k + nm
  local srcs = {}
  for p = k, k + 2 * np - 1 do srcs[#srcs + 1] = KEYS[p] end
  k = k + 2 * np
  local extra = {}
  for e = i, i + 2 * ne - 1, 2 do
    local seq = tonumber(ARGV[e])
    if seq == 0 or seq > applied then extra[#extra + 1] = ARGV[e + 1] end
  end
  i = i + 2 * ne
  if kept then out[#out + 1] = count(srcs, extra, exact, KEYS[1]) else out[#out + 1] = -1 end
end
return out
`;

/**
 * Removes leaves of a distinct series and rebuilds the prefix sets that held them from the
 * leaves that remain.
 *
 * KEYS     per window: leaf index hash; then (set, hll) per leaf removed; (set, hll) per
 *          aggregate deleted (wholly inside what was removed); per aggregate rebuilt: (set, hll),
 *          then (set, hll) per source leaf
 * ARGV[1]  ttl seconds; ARGV[2] EXACT; then per window: nRemoved, the removed fields, nDeleted,
 *          nRebuilt, nSources per rebuilt aggregate
 *
 * Returns the fields removed (one entry per window a field was found in).
 */
export const REMOVE_DISTINCT_LUA = `${UNION}
local ttl, exact = tonumber(ARGV[1]), tonumber(ARGV[2])
local removed = {}
local i, k = 3, 1
while k <= #KEYS do
  local leaf = KEYS[k]
  k = k + 1
  local nr = tonumber(ARGV[i])
  i = i + 1
  for r = 1, nr do
    if redis.call('HDEL', leaf, ARGV[i]) == 1 then removed[#removed + 1] = ARGV[i] end
    redis.call('DEL', KEYS[k], KEYS[k + 1])
    i = i + 1
    k = k + 2
  end
  local nd, nb = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, nd do
    redis.call('DEL', KEYS[k], KEYS[k + 1])
    k = k + 2
  end
  for _ = 1, nb do
    local s, h = KEYS[k], KEYS[k + 1]
    local ns = tonumber(ARGV[i])
    i = i + 1
    k = k + 2
    local srcs = {}
    for p = k, k + 2 * ns - 1 do srcs[#srcs + 1] = KEYS[p] end
    k = k + 2 * ns
    local vals, n, hlls = union(srcs, {})
    redis.call('DEL', s, h)
    if #hlls == 0 and n <= exact then
      for j = 1, n, 500 do redis.call('SADD', s, unpack(vals, j, math.min(j + 499, n))) end
      if n > 0 then redis.call('EXPIRE', s, ttl) end
    else
      for j = 1, #hlls, 500 do redis.call('PFMERGE', h, unpack(hlls, j, math.min(j + 499, #hlls))) end
      for j = 1, n, 500 do redis.call('PFADD', h, unpack(vals, j, math.min(j + 499, n))) end
      redis.call('EXPIRE', h, ttl)
    end
  end
end
return removed
`;
