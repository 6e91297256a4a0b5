-- permits: up to `limit` leases held at once, shared by lua/lock/sem-*.lua (Semaphore) and
-- lua/ratelimit/concurrency-*.lua (ConcurrencyLimiter). Include after now-ms. The permits are a zset of
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
local function pm_extend(key, token, ttl, ttlArg, now)
  local expiry = redis.call('ZSCORE', key, token)
  if not expiry then return false end
  if tonumber(expiry) <= now then
    redis.call('ZREM', key, token)
    return false
  end
  redis.call('ZADD', key, now + ttl, token)
  pm_expire_gt(key, ttlArg)
  return true
end

-- Whether a permit's expiry (ZSCORE's text of integer ms) has passed at server time t (TIME's reply). Digit strings
-- of equal length compare as numbers, so an expiry outside the current second needs no text-to-number conversion.
local function pm_expired(expiry, t)
  local s = t[1]
  if #expiry == #s + 3 then
    if expiry > s .. '999' then return false end
    if expiry <= s .. '000' then return true end
  end
  return tonumber(expiry) <= tonumber(s) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Frees `token`'s permit; 1 when it was still live, 0 when it had expired (server time) or was released. Reads the
-- server time only when the permit is there.
local function pm_release(key, token)
  local expiry = redis.call('ZSCORE', key, token)
  if not expiry then return 0 end
  redis.call('ZREM', key, token)
  if pm_expired(expiry, redis.call('TIME')) then return 0 end
  return 1
end
