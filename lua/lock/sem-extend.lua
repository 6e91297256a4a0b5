-- Semaphore extend: reset one permit's expiry (Redis server time), only while it is still held and unexpired.
-- KEYS[1] holders (zset): token -> expiry in server ms
-- ARGV[1] token (string): the permit's token
-- ARGV[2] ttlMs (ms): new time to live from now
-- Reply: number
-- (1 when extended, 0 when the permit had expired (it is removed) or was released)
-- An expired permit is removed. The key's expiry moves only forward (PEXPIRE GT), and NX gives a key without a TTL
-- one back (as in sem-acquire.lua). PEXPIRE comes before ZADD: on a full noeviction Redis a script's first write may
-- not be one that adds data (ZADD is refused with OOM), while a held permit must still be renewed.
local key, token, ttl = KEYS[1], ARGV[1], ARGV[2]
local expiry = redis.call('ZSCORE', key, token)
if not expiry then return 0 end
local t = redis.call('TIME')
local us = t[2] + 0
local now = t[1] * 1000 + (us - us % 1000) / 1000
if expiry + 0 <= now then
  redis.call('ZREM', key, token)
  return 0
end
if redis.call('PEXPIRE', key, ttl, 'GT') == 0 then redis.call('PEXPIRE', key, ttl, 'NX') end
redis.call('ZADD', key, string.format('%d', now + ttl), token)
return 1
