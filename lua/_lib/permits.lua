-- permits: up to `limit` leases held at once, for lua/ratelimit/concurrency-*.lua (ConcurrencyLimiter; the Semaphore's
-- lua/lock/sem-*.lua keep the same zset with the same rules, inline). Include after now-ms. The permits are a zset of
-- token -> expiry (Redis server ms); a permit whose expiry has passed is dead: pm_take purges them all before counting,
-- pm_extend and pm_release treat their own as gone, so expiry is judged on server time only, never by a client clock.
-- The key lives as long as its longest permit (PEXPIRE GT: only a new expiry beyond the key's moves it), so an
-- abandoned set disappears on its own. GT never sets a TTL on a key without one (Redis counts that as infinite), so
-- when GT changed nothing, NX gives such a key (PERSISTed, restored or written by something else) its TTL back.

-- Moves the key's expiry to ttl from now when that is later than its current one, and sets it when it has none.
local function pm_expire_gt(key, ttlArg)
  if redis.call('PEXPIRE', key, ttlArg, 'GT') == 0 then redis.call('PEXPIRE', key, ttlArg, 'NX') end
end

-- Takes a permit for `token` expiring at now + ttl when fewer than `limit` are live. Returns taken (boolean), the
-- number of live permits after the call and, when not taken, the ms until the earliest permit expires (at least 1).
-- ttlArg is ttl as the caller's string (given to PEXPIRE as is). An empty set (the key is gone) needs no purge; a set
-- purged empty is deleted by Redis, so a new key gets a plain PEXPIRE, an existing one PEXPIRE GT (Redis 7.0).
local function pm_take(key, token, limit, ttl, ttlArg, now)
  local n = redis.call('ZCARD', key)
  if n > 0 then
    n = n - redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if n >= limit then
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      return false, n, tonumber(first[2]) - now
    end
  end
  redis.call('ZADD', key, now + ttl, token)
  if n == 0 then redis.call('PEXPIRE', key, ttlArg) else pm_expire_gt(key, ttlArg) end
  return true, n + 1, 0
end

-- Resets the expiry of `token`'s permit to now + ttl; false when it had expired (it is removed) or was released.
-- PEXPIRE comes before ZADD (as in lua/lock/sem-extend.lua): on a full noeviction Redis a script's first write may not
-- be one that adds data (ZADD is refused with OOM), while a held permit must still be renewed.
local function pm_extend(key, token, ttl, ttlArg, now)
  local expiry = redis.call('ZSCORE', key, token)
  if not expiry then return false end
  if tonumber(expiry) <= now then
    redis.call('ZREM', key, token)
    return false
  end
  pm_expire_gt(key, ttlArg)
  redis.call('ZADD', key, now + ttl, token)
  return true
end

-- Frees `token`'s permit; 1 when it was still live, 0 when it had expired (server time) or was released. Expired
-- permits (this one's too) are purged by score up to the server time, then ZREM tells whether this one was still
-- there. The bound is TIME's digits as text, seconds then microseconds padded to 6 digits, 'e-3': exactly the time in
-- ms with its fraction (an integer expiry <= it is <= the whole ms). No text comparison in Lua (which would follow the
-- server's locale), no number conversion, no ZSCORE (whose reply Redis formats with '%.17g').
local function pm_release(key, token)
  local t = redis.call('TIME')
  local us = t[2]
  if #us < 6 then us = string.sub('00000', #us) .. us end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', t[1] .. us .. 'e-3')
  return redis.call('ZREM', key, token)
end
