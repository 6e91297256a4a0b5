-- Semaphore release: remove one permit if it is still held and unexpired (Redis server time).
-- KEYS[1] holders (zset): token -> expiry in server ms
-- ARGV[1] token (string): the permit's token
-- Reply: number
-- (1 when the permit was live, 0 when it had expired or was released)
-- Expired permits (this one's too) are purged by score up to the server time, then ZREM tells whether this one was
-- still there. The bound is TIME's digits as text, seconds then microseconds padded to 6 digits, 'e-3' (exactly the
-- time in ms with its fraction; an integer expiry <= it is <= the whole ms): no number conversion or comparison of
-- text in Lua, and no ZSCORE (whose reply Redis formats with '%.17g').
local key = KEYS[1]
local t = redis.call('TIME')
local us = t[2]
if #us < 6 then us = string.sub('00000', #us) .. us end
redis.call('ZREMRANGEBYSCORE', key, '-inf', t[1] .. us .. 'e-3')
return redis.call('ZREM', key, ARGV[1])
