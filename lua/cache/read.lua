-- Read: a plain read of one cache entry (no fill lock, no fill token): get.lua with an empty token, minus the
-- lock's key and the arguments, which a read that takes no lock does not need. Entry fields as in get.lua.
-- KEYS[1] entry (hash): the entry
-- ARGV: none
-- Reply: number | [state: number, value: string, freshInMs: number, staleInMs: number, tags: string, locked: number]
-- (a miss: 0; otherwise state 1 fresh / 2 stale, the ms until each deadline (server time), and locked 0)
--@include now-ms
--@include cache-entry
local h, state, fresh, stale = ce_read(KEYS[1], now_ms())
if state == 0 then return 0 end
return { state, h[1], fresh, stale, h[4] or '', 0 }
