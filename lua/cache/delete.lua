-- Delete: replaces one cache entry with a short-lived tombstone { d = 1, w = now }, so that a load which started
-- before the delete cannot write its (now outdated) value back afterwards (see set.lua's `since`).
-- KEYS[1] entry (hash): the entry
-- ARGV[1] tombstoneMs (ms): how long the tombstone lives (at least the longest load that may still write)
-- Reply: number
--@include now-ms
local now = now_ms()
local existed = 0
if redis.call('HEXISTS', KEYS[1], 'v') == 1 then existed = 1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', '1', 'w', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return existed
