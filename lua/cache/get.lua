-- Get: reads one cache entry and, when it is missing or stale (or the caller says it is unusable), tries to take
-- the entry's fill lock so that exactly one caller across all replicas loads it. The lock's token is also the
-- holder's fill token: set.lua writes a loaded value back only while the token still holds the lock. A caller that
-- gave up waiting for another holder registers its fill token in the entry instead (`register`).
-- An entry is a hash: v = encoded value, f = fresh until (server ms), s = stale until (server ms), t = tag versions
-- (JSON), and `p:<token>` = deadline (server ms) per registered fill token (entries written by older versions also
-- hold w = written at, never read). Every set, delete and write-back replaces the hash and deletes the lock, so it
-- revokes the fill tokens of the loads that started before it: their results are not written, however long the
-- load or the network took. A miss replies one integer (no table); deadlines come back relative to server time.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock, holding the loader's token
-- ARGV[1] token (string): lock and fill token of the caller; "" = a plain read (no lock, no fill token)
-- ARGV[2] lockTtlMs (ms): lifetime of the lock or registered token: the longest time from this read to a write-back
-- ARGV[3] force (0|1): 1 = take the lock even when the entry is fresh (its tags turned out to be invalid)
-- ARGV[4] register (0|1): 1 = when the lock is held by another caller, register the token in the entry
-- Reply: number | [state: number, value: string, freshInMs: number, staleInMs: number, tags: string, locked: number]
-- (a miss: locked 0/1; otherwise state 1 fresh / 2 stale and the ms until each deadline, server time)
--@include now-ms
--@include cache-entry
local now = now_ms()
local h, state, fresh, stale = ce_read(KEYS[1], now)
local locked = 0
if ARGV[1] ~= '' and (state ~= 1 or ARGV[3] == '1') then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
    locked = 1
  elseif redis.call('GET', KEYS[2]) == ARGV[1] then
    locked = 1
  elseif ARGV[4] == '1' then
    local ttl = tonumber(ARGV[2])
    redis.call('HSET', KEYS[1], 'p:' .. ARGV[1], now + ttl)
    -- The hash lives at least as long as the token: an entry expires at its stale deadline (set.lua), a hash
    -- holding only tokens gets the newest token's lifetime.
    if not h[1] or stale < ttl then
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
    end
  end
end
if state == 0 then return locked end
return { state, h[1], fresh, stale, h[4] or '', locked }
