/**
 * The Lua scripts the Redis store runs (registered with ioredis `defineCommand`; EVALSHA with
 * a fallback to EVAL). Each call touches the keys of one series only, which share a Redis
 * Cluster slot through the {series} hash tag. Key layout: see redis-layout.ts.
 */

/**
 * Lua: what an add script writes to a window's aggregate hash besides aggregates: the writer's
 * mask set ("#m"; "#x" once writers disagree) when it wrote aggregates, the adds refused because
 * the leaf hash was full ("#o"), and the hash's TTL.
 */
export const MARK_WINDOW = `
local function markwindow(agg, masks, na, over, ttl)
  if na > 0 then
    local cur = redis.call('HGET', agg, '#m')
    if not cur then
      redis.call('HSET', agg, '#m', masks)
    elseif cur ~= masks then
      redis.call('HSET', agg, '#x', '1')
    end
  end
  if over > 0 then redis.call('HINCRBY', agg, '#o', over) end
  if na > 0 or over > 0 then redis.call('EXPIRE', agg, ttl) end
end
`;

/**
 * Applies one batch of adds of one series, atomically and at most once.
 *
 * KEYS[1]  the node's seq key; then per window: leaf hash, aggregate hash
 * ARGV[1]  batch sequence number (a batch at or below the stored one was applied already: skip)
 * ARGV[2]  ttl seconds for every key written
 * ARGV[3]  the writer's aggregate mask set, e.g. "0,24" ('' for string series)
 * ARGV[4]  max_keys: the most fields a window's leaf hash may hold
 * then per window: nLeaf, nAgg, nLeaf (field, delta) pairs, nAgg (field, delta) pairs
 *
 * A leaf hash holding max_keys fields takes no new field: adds to the fields it has go on,
 * an add for a new field is dropped and counted in the aggregate hash's "#o" field. The
 * aggregates (cidr types) take every add, so prefix counts stay exact. Fields that reach 0
 * are deleted, so "HINCRBY returned the delta" means the field is new.
 *
 * Returns {1, adds dropped} when applied, {0, 0} when skipped as a duplicate.
 */
export const ADD_LUA = `${MARK_WINDOW}
local seq = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if seq <= last then return {0, 0} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
local masks = ARGV[3]
local maxk = tonumber(ARGV[4])
local dropped = 0
local i = 5
for k = 2, #KEYS, 2 do
  local leaf, agg = KEYS[k], KEYS[k + 1]
  local nl, na = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  local n = redis.call('HLEN', leaf)
  local over = 0
  for _ = 1, nl do
    local field, delta = ARGV[i], ARGV[i + 1]
    if n >= maxk and redis.call('HEXISTS', leaf, field) == 0 then
      over = over + 1
    else
      local v = redis.call('HINCRBY', leaf, field, delta)
      if v == 0 then
        redis.call('HDEL', leaf, field)
        n = n - 1
      elseif v == tonumber(delta) then
        n = n + 1
      end
    end
    i = i + 2
  end
  redis.call('EXPIRE', leaf, ttl)
  for _ = 1, na do
    if redis.call('HINCRBY', agg, ARGV[i], ARGV[i + 1]) == 0 then redis.call('HDEL', agg, ARGV[i]) end
    i = i + 2
  end
  markwindow(agg, masks, na, over, ttl)
  dropped = dropped + over
end
return {1, dropped}
`;

/**
 * Counts several queries of one series over a contiguous range of windows.
 *
 * KEYS[1]  the asking node's seq key; then per window j (1-based, window 0-offset order): leaf
 *          hash at 2j, aggregate hash at 2j+1
 * ARGV     per query: kind ('l' leaf field, 'a' aggregate field), field, mask, first j, last j
 *
 * Returns {lastSeq, {sum, "j1,j2,..."} per query}. lastSeq is the asking node's last applied
 * batch, read in the same atomic step, so the node adds exactly its batches not yet applied.
 * The windows listed could not be answered from the aggregates (mask not kept by every writer
 * of that window): such a query is summed from the leaves instead.
 */
export const COUNT_LUA = `
local out = {tonumber(redis.call('GET', KEYS[1]) or '0')}
local i = 1
while i <= #ARGV do
  local kind, field, mask = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local s, e = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  i = i + 5
  local sum, scan = 0, {}
  for j = s, e do
    if kind == 'l' then
      local v = redis.call('HGET', KEYS[2 * j], field)
      if v then sum = sum + tonumber(v) end
    else
      local r = redis.call('HMGET', KEYS[2 * j + 1], field, '#m', '#x')
      if r[2] and (r[3] or not string.find(',' .. r[2] .. ',', ',' .. mask .. ',', 1, true)) then
        scan[#scan + 1] = j
      elseif r[1] then
        sum = sum + tonumber(r[1])
      end
    end
  end
  out[#out + 1] = {sum, table.concat(scan, ',')}
end
return out
`;

/**
 * Reads whole leaf hashes (top talkers, counts at masks not kept, prefix removal).
 *
 * KEYS[1]  the asking node's seq key; then the leaf hashes
 * Returns {lastSeq, flat HGETALL of each leaf hash}.
 */
export const LEAVES_LUA = `
local out = {tonumber(redis.call('GET', KEYS[1]) or '0')}
for k = 2, #KEYS do out[#out + 1] = redis.call('HGETALL', KEYS[k]) end
return out
`;

/**
 * Removes leaves from windows and takes their counts out of the aggregates.
 *
 * KEYS     per window: leaf hash, aggregate hash
 * ARGV[1]  the remover's aggregate mask set ('' for string series); ARGV[2] ttl seconds
 * then per window: nLeaves; per leaf: field, nAgg, nAgg aggregate fields
 *
 * Returns the fields removed (one entry per window a field was found in).
 */
export const REMOVE_LUA = `
local masks = ARGV[1]
local ttl = tonumber(ARGV[2])
local i = 3
local removed = {}
for k = 1, #KEYS, 2 do
  local leaf, agg = KEYS[k], KEYS[k + 1]
  local n = tonumber(ARGV[i])
  i = i + 1
  local touched = false
  for _ = 1, n do
    local field, na = ARGV[i], tonumber(ARGV[i + 1])
    i = i + 2
    local v = redis.call('HGET', leaf, field)
    if v then
      redis.call('HDEL', leaf, field)
      removed[#removed + 1] = field
      local neg = string.format('%d', -tonumber(v))
      for a = 0, na - 1 do
        if redis.call('HINCRBY', agg, ARGV[i + a], neg) == 0 then redis.call('HDEL', agg, ARGV[i + a]) end
      end
      touched = true
    end
    i = i + na
  end
  if touched and masks ~= '' then
    local cur = redis.call('HGET', agg, '#m')
    if cur and cur ~= masks then redis.call('HSET', agg, '#x', '1') end
    if redis.call('TTL', agg) == -1 then redis.call('EXPIRE', agg, ttl) end
  end
end
return removed
`;
