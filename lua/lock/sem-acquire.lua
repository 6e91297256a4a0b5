-- Semaphore acquire: purge permits whose expiry (Redis server time) has passed, then take a permit if fewer than
-- `permits` are held, and increment the semaphore's fence counter.
-- KEYS[1] holders (zset): token -> expiry in server ms
-- KEYS[2] fence (integer): the semaphore's fence counter, incremented once per successful acquisition
-- ARGV[1] token (string): random token of the new permit
-- ARGV[2] ttlMs (ms): permit time to live
-- ARGV[3] permits (integer): how many permits may be held at once
-- Reply: [acquired: number, fence: number, retryAfterMs: number]
--@include now-ms
local now = now_ms()
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  -- The key lives as long as its longest permit.
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  local fence = redis.call('INCR', KEYS[2])
  return { 1, fence, ttl }
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return { 0, 0, math.max(0, tonumber(first[2]) - now) }
