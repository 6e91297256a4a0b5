-- Get: reads one cache entry and, when it is missing or stale (or the caller says it is unusable), tries to take
-- the entry's fill lock so that exactly one caller across all replicas loads it, and registers the caller's fill
-- token: set.lua writes a loaded value back only while that token is still in the entry.
-- An entry is a hash: v = encoded value, f = fresh until (server ms), s = stale until (server ms),
-- w = written at (server ms), t = tag versions (JSON), and one field `p:<token>` = deadline (server ms) per load in
-- progress. Every write (set.lua) and delete replaces the whole hash, so it drops the tokens of the loads that
-- started before it: their results can no longer be written, however long the load or the network took.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock, holding the loader's token
-- ARGV[1] token (string): lock and fill token of the caller; "" = a plain read (no lock, no fill token)
-- ARGV[2] lockTtlMs (ms): how long the fill lock lives, and the longest time from this read to the write-back
-- ARGV[3] force (0|1): 1 = take the lock even when the entry is fresh (its tags turned out to be invalid)
-- Reply: [state: number, value: string, freshUntil: number, staleUntil: number, tags: string, nowMs: number, locked: number]
--@include now-ms
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'v', 'f', 's', 't')
local state = 0
if h[1] and now < tonumber(h[3]) then
  if now < tonumber(h[2]) then state = 1 else state = 2 end
end
local locked = 0
if ARGV[1] ~= '' and (state ~= 1 or ARGV[3] == '1') then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
    locked = 1
  elseif redis.call('GET', KEYS[2]) == ARGV[1] then
    locked = 1
  end
  local ttl = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'p:' .. ARGV[1], string.format('%.0f', now + ttl))
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
if state == 0 then
  return { 0, '', 0, 0, '', now, locked }
end
return { state, h[1], tonumber(h[2]), tonumber(h[3]), h[4] or '', now, locked }
