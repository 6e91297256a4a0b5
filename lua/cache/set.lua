-- Set: writes one cache entry (fresh for freshMs, then stale for staleMs, then gone) and releases the caller's
-- fill lock. A write-back after a load (fill token given) happens only while the token get.lua registered at the
-- read that started the load is still in the entry and its deadline has not passed: any set, delete, clear or
-- other write-back since then replaced the hash and dropped the token, so a load never overwrites a newer state,
-- whatever the time between the read and this write.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock
-- ARGV[1] value (string): the encoded value
-- ARGV[2] freshMs (ms): how long the value is fresh
-- ARGV[3] staleMs (ms): how long it may be served stale after that (0 = none)
-- ARGV[4] tags (string): JSON [[tag, version], ...] the value was computed under, "" = none
-- ARGV[5] fill (string): "" = unconditional write; otherwise the fill token of the load being written back
-- ARGV[6] token (string): fill lock token to release, "" = none
-- Reply: [written: number, nowMs: number]
--@include now-ms
local now = now_ms()
local written = 1
if ARGV[5] ~= '' then
  local deadline = redis.call('HGET', KEYS[1], 'p:' .. ARGV[5])
  if not deadline or now >= tonumber(deadline) then written = 0 end
end
if written == 1 then
  local fresh = now + tonumber(ARGV[2])
  local stale = fresh + tonumber(ARGV[3])
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', string.format('%.0f', fresh), 's', string.format('%.0f', stale),
    'w', string.format('%.0f', now), 't', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]))
end
if ARGV[6] ~= '' and redis.call('GET', KEYS[2]) == ARGV[6] then
  redis.call('DEL', KEYS[2])
end
return { written, now }
