-- Get: reads one cache entry and, when it is missing or stale (or the caller says it is unusable), tries to take
-- the entry's fill lock so that exactly one caller across all replicas loads it. The lock's token is also the
-- holder's fill token: set.lua writes a loaded value back only while the token still holds the lock. A caller that
-- gave up waiting for another holder registers its fill token in the entry instead (mode 2).
-- An entry is a hash: v = encoded value, f = fresh until (server ms), s = stale until (server ms), t = tag versions
-- (JSON), `p:<token>` = deadline (server ms) per registered fill token, and q = a caller is waiting for the holder's
-- load (entries written by older versions also hold w = written at, never read). Every set, delete and write-back replaces the hash and deletes the lock, so it
-- revokes the fill tokens of the loads that started before it: their results are not written, however long the
-- load or the network took. A miss replies one integer (no table); deadlines come back relative to server time.
-- Server time is read only when it is needed (an entry to judge, a token to register): a miss that takes the lock
-- does without TIME. Plain reads (no lock) are not this script: read.lua on a Cluster, otherwise the client sends
-- HMGET and TIME (redis-tier.ts).
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock, holding the loader's token
-- ARGV[1] token (string): lock and fill token of the caller
-- ARGV[2] lockTtlMs (ms): lifetime of the lock or registered token: the longest time from this read to a write-back
-- ARGV[3] mode (0|1|2|3): 1 = take the lock even when the entry is fresh (its tags turned out to be invalid);
-- 2 = when the lock is held by another caller and the entry is missing, register the token in the entry; 3 = 1 and
-- register even when the entry is there
-- ARGV[4] tags (string): with mode 1 or 3, the tag versions (t) of the entry judged outdated: an entry written since
-- (t differs) is judged anew by the caller, as with mode 0 or 2 (its load may have been the one awaited); "" otherwise
-- Reply: number | [value: string, freshInMs: number, staleInMs: number, tags: string | null, locked: number]
-- (a miss: locked 0/1; otherwise the ms until each deadline, server time: fresh when freshInMs > 0, else stale)
--@include now-ms
local h = redis.call('HMGET', KEYS[1], 'v', 'f', 's', 't')
local now, fresh, stale
local usable = false
if h[1] then
  now = now_ms()
  stale = h[3] - now
  if stale > 0 then
    fresh = h[2] - now
    usable = true
  end
end
local locked = 0
local mode = ARGV[3]
if (mode == '1' or mode == '3') and usable and (h[4] or '') ~= ARGV[4] then
  -- Replaced since the caller read it (a load written back, a set): not the entry found outdated.
  if mode == '3' then mode = '2' else mode = '0' end
end
if not (usable and fresh > 0) or mode == '1' or mode == '3' then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
    locked = 1
  elseif redis.call('GET', KEYS[2]) == ARGV[1] then
    locked = 1
  elseif mode == '3' or (mode == '2' and not usable) then
    -- (A stale entry is served, not loaded, by a caller that did not get the lock: it registers no token.)
    local ttl = ARGV[2] + 0
    redis.call('HSET', KEYS[1], 'p:' .. ARGV[1], string.format('%d', (now or now_ms()) + ttl))
    -- The hash lives at least as long as the token: an entry expires at its stale deadline (set.lua), a hash
    -- holding only tokens gets the newest token's lifetime.
    if not h[1] or stale < ttl then
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
    end
  elseif not usable then
    -- A caller about to wait for the holder's load marks the entry (q), so that the write-back tells the replicas
    -- waiting (set.lua replies 2 and the holder publishes); a load nobody waited for publishes nothing. The mark
    -- lives as long as a lock could (a hash holding only marks and tokens expires by itself).
    if redis.call('HSETNX', KEYS[1], 'q', '1') == 1 and redis.call('PTTL', KEYS[1]) < ARGV[2] + 0 then
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
    end
  end
end
if not usable then return locked end
return { h[1], fresh, stale, h[4], locked }
