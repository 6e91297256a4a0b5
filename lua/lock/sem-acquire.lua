-- Semaphore acquire: take a permit if fewer than `permits` unexpired ones (Redis server time) are held, purging the
-- expired ones first, and increment the semaphore's fence counter. One integer reply (no table to build).
-- KEYS[1] holders (zset): token -> expiry in server ms
-- KEYS[2] fence (integer): the semaphore's fence counter, incremented once per successful acquisition
-- ARGV[1] token (string): random token of the new permit
-- ARGV[2] ttlMs (ms): permit time to live
-- ARGV[3] permits (integer): how many permits may be held at once
-- Reply: number
-- (the new fence, >= 1, when acquired; otherwise minus the ms until the earliest permit expires, <= -1)
--@include now-ms
--@include permits
local taken, _, retryMs = pm_take(KEYS[1], ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[2]), ARGV[2], now_ms())
if not taken then return -retryMs end
return redis.call('INCR', KEYS[2])
