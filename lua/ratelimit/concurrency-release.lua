-- ConcurrencyRelease: frees the slot of one permit; 1 when it was still live, 0 when it had expired or was released.
-- KEYS[1] permits (zset): permit token -> expiry (server ms)
-- ARGV[1] token (string): the permit's token
-- Reply: number
--@include now-ms
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now_ms() then return 0 end
return 1
