-- Semaphore acquire: purge permits whose expiry (Redis server time) has passed, then take a permit if fewer than
-- `permits` are held, and increment the semaphore's fence counter.
-- KEYS[1] holders (zset): token -> expiry in server ms
-- KEYS[2] fence (integer): the semaphore's fence counter, incremented once per successful acquisition
-- ARGV[1] token (string): random token of the new permit
-- ARGV[2] ttlMs (ms): permit time to live
-- ARGV[3] permits (integer): how many permits may be held at once
-- Reply: [acquired: number, fence: number, retryAfterMs: number]
--@include now-ms
--@include permits
local ttl = tonumber(ARGV[2])
local taken, _, retryMs = pm_take(KEYS[1], ARGV[1], tonumber(ARGV[3]), ttl, now_ms())
if not taken then return { 0, 0, retryMs } end
return { 1, redis.call('INCR', KEYS[2]), ttl }
