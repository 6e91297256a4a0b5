-- permits: up to `limit` leases held at once, shared by lua/lock/sem-*.lua (Semaphore) and
-- lua/ratelimit/concurrency-*.lua (ConcurrencyLimiter). Include after now-ms. The permits are a zset of
-- token -> expiry (Redis server ms); a permit whose expiry has passed is dead: pm_take purges them all before counting,
-- pm_extend and pm_release treat their own as gone, so expiry is judged on server time only, never by a client clock.
-- The key lives as long as its longest permit (a PEXPIRE only when a new expiry lies beyond the key's), so an
-- abandoned set disappears on its own.

-- Takes a permit for `token` expiring at now + ttl when fewer than `limit` are live. Returns taken (boolean), the
-- number of live permits after the call and, when not taken, the ms until the earliest permit expires (at least 1).
local function pm_take(key, token, limit, ttl, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return false, n, tonumber(first[2]) - now
  end
  redis.call('ZADD', key, now + ttl, token)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  return true, n + 1, 0
end

-- Resets the expiry of `token`'s permit to now + ttl; false when it had expired (it is removed) or was released.
local function pm_extend(key, token, ttl, now)
  local expiry = redis.call('ZSCORE', key, token)
  if not expiry then return false end
  if tonumber(expiry) <= now then
    redis.call('ZREM', key, token)
    return false
  end
  redis.call('ZADD', key, now + ttl, token)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  return true
end

-- Frees `token`'s permit; 1 when it was still live, 0 when it had expired (server time) or was released. Reads the
-- server time only when the permit is there.
local function pm_release(key, token)
  local expiry = redis.call('ZSCORE', key, token)
  if not expiry then return 0 end
  redis.call('ZREM', key, token)
  if tonumber(expiry) <= now_ms() then return 0 end
  return 1
end
