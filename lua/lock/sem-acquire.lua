-- Semaphore acquire: take a permit if fewer than `permits` unexpired ones (Redis server time) are held, purging the
-- expired ones first, and increment the semaphore's fence counter. One integer reply (no table to build).
-- KEYS[1] holders (zset): token -> expiry in server ms
-- KEYS[2] fence (integer): the semaphore's fence counter, incremented once per successful acquisition
-- ARGV[1] token (string): random token of the new permit
-- ARGV[2] ttlMs (ms): permit time to live
-- ARGV[3] permits (integer): how many permits may be held at once
-- Reply: number
-- (the new fence, >= 1, when acquired; otherwise minus the ms until the earliest permit expires, <= -1)
-- The same zset as lua/_lib/permits.lua (ConcurrencyLimiter), written inline: a library's functions are closures
-- built on every call. An empty set (the key is gone) needs no purge and no limit check; a set purged empty is
-- deleted by Redis, so a new key gets a plain PEXPIRE. An existing key lives as long as its longest permit: PEXPIRE GT
-- moves its expiry only forward, and NX gives a key without a TTL (PERSISTed, restored) one back. The expiry is
-- formatted with '%d' (an integer string; a number handed to redis.call is formatted with '%.17g', dearer).
local key, ttl = KEYS[1], ARGV[2]
local t = redis.call('TIME')
local us = t[2] + 0
local now = t[1] * 1000 + (us - us % 1000) / 1000
local n = redis.call('ZCARD', key)
if n > 0 then
  n = n - redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if n >= ARGV[3] + 0 then return now - redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] end
end
redis.call('ZADD', key, string.format('%d', now + ttl), ARGV[1])
if n == 0 then
  redis.call('PEXPIRE', key, ttl)
elseif redis.call('PEXPIRE', key, ttl, 'GT') == 0 then
  redis.call('PEXPIRE', key, ttl, 'NX')
end
return redis.call('INCR', KEYS[2])
