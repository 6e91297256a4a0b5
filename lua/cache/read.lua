-- Read: a plain read of one cache entry (get() without a loader: no fill lock, no fill token), as get.lua judges an
-- entry. Used on a Cluster: one script of one key is redirected by the client on MOVED/ASK (a slot being migrated
-- or moved) and runs on the entry's master; a standalone or Sentinel connection sends HMGET and TIME instead
-- (redis-tier.ts). Server time is read only when there is an entry to judge.
-- KEYS[1] entry (hash): the entry
-- ARGV: none
-- Reply: number | [value: string, freshInMs: number, staleInMs: number, tags: string | null, locked: number]
-- (a miss or an entry past its stale deadline: 0; otherwise the ms until each deadline, server time, and locked 0)
--@include now-ms
local h = redis.call('HMGET', KEYS[1], 'v', 'f', 's', 't')
if not h[1] then return 0 end
local now = now_ms()
local stale = h[3] - now
if not (stale > 0) then return 0 end
return { h[1], h[2] - now, stale, h[4], 0 }
