-- Set: writes one cache entry (fresh for freshMs, then stale for staleMs, then gone) and deletes the fill lock (the
-- entry is fresh now: nobody needs to load it, and a load that started before this write must not write after it).
-- A write-back after a load (fill token given) happens only while its token still holds the lock, or is still
-- registered in the entry before its deadline (see get.lua); otherwise nothing is written and the caller's lock, if
-- it still holds it, is released.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock
-- ARGV[1] value (string): the encoded value
-- ARGV[2] freshMs (ms): how long the value is fresh
-- ARGV[3] staleMs (ms): how long it may be served stale after that (0 = none)
-- ARGV[4] tags (string): JSON [[tag, version], ...] the value was computed under, "" = none
-- ARGV[5] fill (string): "" = unconditional write; otherwise the fill token of the load being written back
-- Reply: number
-- (1 written, 0 refused)
--@include now-ms
local now = now_ms()
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[5] then
  local deadline = redis.call('HGET', KEYS[1], 'p:' .. ARGV[5])
  if not deadline or now >= tonumber(deadline) then return 0 end
end
local fresh = tonumber(ARGV[2])
local life = fresh + tonumber(ARGV[3])
redis.call('DEL', KEYS[1], KEYS[2])
-- Integer-valued numbers go to Redis as their exact decimal digits (%.17g).
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', now + fresh, 's', now + life, 't', ARGV[4])
redis.call('PEXPIRE', KEYS[1], life)
return 1
