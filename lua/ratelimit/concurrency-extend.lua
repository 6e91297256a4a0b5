-- ConcurrencyExtend: renews one live permit's lease to ttlMs from now; 0 when it had already expired or was released.
-- KEYS[1] permits (zset): permit token -> expiry (server ms)
-- ARGV[1] token (string): the permit's token
-- ARGV[2] ttlMs (ms): the new lease from now
-- Reply: [extended: number, expiresAtMs: number]
--@include now-ms
local now = now_ms()
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  if score then redis.call('ZREM', KEYS[1], ARGV[1]) end
  return { 0, 0 }
end
local expires = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
return { 1, expires }
