/**
 * The Lua scripts of the shared ban list (ban-sync.ts). Every key has the {bans} hash tag, so all
 * of them live in one Redis Cluster slot and one script may touch them together.
 *
 *   <p>{bans}:b:<prefix>   string  the ban as JSON {prefix, since, until, policy, level, node}; expires with it
 *   <p>{bans}:h:<prefix>   string  escalation history {at, level, keepUntil}; expires at keepUntil
 *   <p>{bans}:l:<prefix>   string  lifted at (epoch ms): a node holding an older copy must not bring it back
 *   <p>{bans}:i            zset    prefix → until (the listing a resync pages through)
 *   <p>{bans}:v            string  a counter bumped by every change (a resync is needed when it moved)
 *   <p>{bans}:events       channel {op: "ban", ban} | {op: "lift", prefix}, with the sender's id
 *
 * Times are the calling node's clock (epoch ms); every TTL is a duration, so Redis' own clock only
 * decides when a key goes, not what a ban means.
 */

/**
 * A policy's ban, escalated with the history every node shares: an active ban on the prefix is
 * returned as it is; else level = history's level + 1 while it counts (else 0), duration
 * for × factor^level capped at max; the ban, its history and its index entry are written and the
 * change published.
 *
 * KEYS  ban, history, index, version
 * ARGV  prefix, now, forMs, factor, maxMs, policy, node, channel, sender
 * Returns the ban in force (JSON).
 */
export const BAN_LUA = `
local now = tonumber(ARGV[2])
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cjson.decode(cur)['until']) > now then return cur end
local level = 0
local h = redis.call('GET', KEYS[2])
if h then
  local hh = cjson.decode(h)
  if tonumber(hh['keepUntil']) > now then level = tonumber(hh['level']) + 1 end
end
local maxms = tonumber(ARGV[5])
local ms = math.min(tonumber(ARGV[3]) * tonumber(ARGV[4]) ^ level, maxms)
ms = math.max(1, math.floor(ms))
local ban = cjson.encode({prefix = ARGV[1], since = now, ['until'] = now + ms, policy = ARGV[6], level = level, node = ARGV[7]})
redis.call('SET', KEYS[1], ban, 'PX', ms)
redis.call('SET', KEYS[2], cjson.encode({at = now, level = level, keepUntil = now + ms + maxms}), 'PX', ms + maxms)
redis.call('ZADD', KEYS[3], now + ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[8], '{"op":"ban","from":' .. cjson.encode(ARGV[9]) .. ',"ban":' .. ban .. '}')
return ban
`;

/**
 * A ban made by hand (`set`: replaces what is there), or one a node made while Redis was out of
 * reach (`merge`: kept only when Redis holds no longer ban on the prefix and the prefix was not
 * lifted since the ban was issued; its history too, unless Redis' is newer).
 *
 * KEYS  ban, history, index, version, lifted
 * ARGV  mode, now, ban JSON, since, until, history JSON ('' for none), history ttl ms, channel, sender
 * Returns the ban in force (JSON), or "lifted".
 */
export const PUT_LUA = `
local now = tonumber(ARGV[2])
local since, till = tonumber(ARGV[4]), tonumber(ARGV[5])
if till <= now then return 'lifted' end
if ARGV[1] == 'merge' then
  local lifted = redis.call('GET', KEYS[5])
  if lifted and tonumber(lifted) >= since then return 'lifted' end
  local cur = redis.call('GET', KEYS[1])
  if cur and tonumber(cjson.decode(cur)['until']) >= till then return cur end
  if ARGV[6] ~= '' then
    local h = redis.call('GET', KEYS[2])
    if not h or tonumber(cjson.decode(h)['at']) < cjson.decode(ARGV[6])['at'] then
      redis.call('SET', KEYS[2], ARGV[6], 'PX', tonumber(ARGV[7]))
    end
  end
else
  redis.call('DEL', KEYS[5])
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', till - now)
redis.call('ZADD', KEYS[3], till, cjson.decode(ARGV[3])['prefix'])
redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[8], '{"op":"ban","from":' .. cjson.encode(ARGV[9]) .. ',"ban":' .. ARGV[3] .. '}')
return ARGV[3]
`;

/**
 * Lifts the ban on a prefix (and forgets its history) on every node. With `before` > 0 (a lift
 * made while Redis was out of reach) a ban issued after that moment stays. A marker keeps older
 * copies from coming back for `markerMs` (at least as long as the lifted ban would have lasted).
 *
 * KEYS  ban, history, index, version, lifted
 * ARGV  prefix, now, before, markerMs, channel, sender
 * Returns 1 when a ban was removed, else 0.
 */
export const LIFT_LUA = `
local now = tonumber(ARGV[2])
local before = tonumber(ARGV[3])
local cur = redis.call('GET', KEYS[1])
if cur and before > 0 and tonumber(cjson.decode(cur)['since']) > before then return 0 end
local marker = tonumber(ARGV[4])
if cur then marker = math.max(marker, tonumber(cjson.decode(cur)['until']) - now) end
local removed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SET', KEYS[5], before > 0 and before or now, 'PX', math.max(1000, marker))
redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[5], '{"op":"lift","from":' .. cjson.encode(ARGV[6]) .. ',"prefix":' .. cjson.encode(ARGV[1]) .. '}')
return removed
`;
