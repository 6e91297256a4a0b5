-- cache-entry: reads one cache entry, shared by lua/cache/get.lua and lua/cache/read.lua. Include after now-ms.
-- Returns the entry's HMGET fields (v, f, s, t), its state (0 missing or past its stale deadline, 1 fresh, 2 stale)
-- and the ms from server time `now` to its fresh and stale deadlines (0 when missing).
local function ce_read(key, now)
  local h = redis.call('HMGET', key, 'v', 'f', 's', 't')
  local state, fresh, stale = 0, 0, 0
  if h[1] then
    stale = tonumber(h[3]) - now
    if stale > 0 then
      fresh = tonumber(h[2]) - now
      if fresh > 0 then state = 1 else state = 2 end
    end
  end
  return h, state, fresh, stale
end
