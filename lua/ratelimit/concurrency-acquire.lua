-- ConcurrencyAcquire: takes one in-flight slot of a key when fewer than limit live permits exist (expired ones are purged).
-- KEYS[1] permits (zset): permit token -> expiry (server ms)
-- ARGV[1] token (string): the new permit's token
-- ARGV[2] limit (integer): most live permits at once
-- ARGV[3] ttlMs (ms): the permit's lease; a holder that crashes frees its slot after it
-- Reply: [acquired: number, expiresAtOrRetryMs: number, inFlight: number]
--@include now-ms
local now = now_ms()
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return { 0, math.max(1, tonumber(first[2]) - now), n }
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
return { 1, now + ttl, n + 1 }
