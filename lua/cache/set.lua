-- Set: writes one cache entry (fresh for freshMs, then stale until lifeMs, then gone) and deletes the fill lock (the
-- entry is fresh now: nobody needs to load it, and a load that started before this write must not write after it).
-- A write-back after a load (fill token given) happens only while its token still holds the lock, or is still
-- registered in the entry before its deadline (see get.lua); otherwise nothing is written and the caller's lock, if
-- it still holds it, is released. The entry's fields are those get.lua and earlier versions read.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock
-- ARGV[1] value (string): the encoded value
-- ARGV[2] freshMs (ms): how long the value is fresh
-- ARGV[3] lifeMs (ms): freshMs + the time it may be served stale after that; the entry's expiry
-- ARGV[4] tags (string): JSON [[tag, version], ...] the value was computed under, "" = none
-- ARGV[5] fill (string): "" = unconditional write; otherwise the fill token of the load being written back
-- Reply: number
-- (0 refused; 1 written where there was no entry and nobody waited for one; 2 written over an entry, a waiting caller's
-- mark or a registered fill token: replicas may hold the key or wait for it, and are to be told)
--@include now-ms
local now = now_ms()
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[5] then
  local deadline = redis.call('HGET', KEYS[1], 'p:' .. ARGV[5])
  if not deadline or now >= deadline + 0 then return 0 end
end
-- The deadlines go to Redis as integer digits from string.format('%d') (a number argument would be printed with
-- %.17g, which costs Redis twice as much; the values are exact integers either way); lifeMs goes to PEXPIRE as the
-- client sent it.
local fmt = string.format
local fresh, stale = fmt('%d', now + ARGV[2]), fmt('%d', now + ARGV[3])
-- The HSET is the script's first write: on a full Redis that does not evict, Redis refuses a script's first write
-- when it may use memory (OOM), but lets any write through once the script has written. A DEL first would have let
-- the value in past maxmemory.
-- HSET answers how many of the four fields are new: fewer than four, there was an entry (replicas may hold it).
local told = 1
if redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', fresh, 's', stale, 't', ARGV[4]) < 4 then told = 2 end
-- Fields of the entry's past (fill tokens registered in it, waiting callers' marks, an earlier version's 'w') go:
-- the entry is written anew.
if redis.call('HLEN', KEYS[1]) > 4 then
  told = 2
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', fresh, 's', stale, 't', ARGV[4])
end
redis.call('DEL', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return told
