-- Semaphore extend: reset one permit's expiry (Redis server time), only while it is still held and unexpired.
-- KEYS[1] holders (zset): token -> expiry in server ms
-- ARGV[1] token (string): the permit's token
-- ARGV[2] ttlMs (ms): new time to live from now
-- Reply: number
--@include now-ms
local now = now_ms()
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
