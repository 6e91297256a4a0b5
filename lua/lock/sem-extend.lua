-- Semaphore extend: reset one permit's expiry (Redis server time), only while it is still held and unexpired.
-- KEYS[1] holders (zset): token -> expiry in server ms
-- ARGV[1] token (string): the permit's token
-- ARGV[2] ttlMs (ms): new time to live from now
-- Reply: number
--@include now-ms
--@include permits
if pm_extend(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[2], now_ms()) then return 1 end
return 0
