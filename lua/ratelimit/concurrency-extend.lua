-- ConcurrencyExtend: renews one live permit's lease to ttlMs from now; 0 when it had already expired or was released.
-- KEYS[1] permits (zset): permit token -> expiry (server ms)
-- ARGV[1] token (string): the permit's token
-- ARGV[2] ttlMs (ms): the new lease from now
-- Reply: [extended: number, expiresAtMs: number]
--@include now-ms
--@include permits
local now = now_ms()
local ttl = tonumber(ARGV[2])
if not pm_extend(KEYS[1], ARGV[1], ttl, ARGV[2], now) then return { 0, 0 } end
return { 1, now + ttl }
