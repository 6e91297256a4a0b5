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
-- Reply: [written: number, nowMs: number]
--@include now-ms
local now = now_ms()
local written = 1
if ARGV[5] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if holder ~= ARGV[5] then
    local deadline = redis.call('HGET', KEYS[1], 'p:' .. ARGV[5])
    if not deadline or now >= tonumber(deadline) then written = 0 end
  end
end
if written == 1 then
  local fresh = now + tonumber(ARGV[2])
  local stale = fresh + tonumber(ARGV[3])
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', string.format('%.0f', fresh), 's', string.format('%.0f', stale),
    'w', string.format('%.0f', now), 't', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]))
end
return { written, now }
