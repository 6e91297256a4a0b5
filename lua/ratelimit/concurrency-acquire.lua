-- ConcurrencyAcquire: takes one in-flight slot of a key when fewer than limit live permits exist (expired ones are purged).
-- KEYS[1] permits (zset): permit token -> expiry (server ms)
-- ARGV[1] token (string): the new permit's token
-- ARGV[2] limit (integer): most live permits at once
-- ARGV[3] ttlMs (ms): the permit's lease; a holder that crashes frees its slot after it
-- Reply: [acquired: number, expiresAtOrRetryMs: number, inFlight: number]
--@include now-ms
--@include permits
local now = now_ms()
local ttl = tonumber(ARGV[3])
local taken, n, retryMs = pm_take(KEYS[1], ARGV[1], tonumber(ARGV[2]), ttl, ARGV[3], now)
if not taken then return { 0, retryMs, n } end
return { 1, now + ttl, n }
