-- queue-due: the score of a job in a queue partition's delayed zset ("<priority digit><id>" -> due, server ms), shared
-- by lua/_lib/queue-add.lua (delays), lua/_lib/queue-retry.lua (retry backoff) and lua/queue/fetch.lua (group rate
-- limits).
-- Jobs due in the same ms must become ready in the order they were delayed (FIFO): equal scores would be read back in
-- member order, i.e. by id. A job due at ms `due` scores `due` when nothing else of that ms is there, otherwise
-- 1/1024 ms more than the last score of that ms (exact in a double until the year 2248). The fetch script takes a
-- job once its score is at most the server's ms, so such a job becomes ready within 1 ms of its due time, never
-- before it (past 1,024 jobs in one ms they spill into the next ms, still in order).
local QD_STEP = 1 / 1024

-- The score for a job due at `due` (ms; rounded up to a whole ms) in delayed zset `key`. `last` caches, for the rest
-- of the script call, the last score given per due ms.
local function qd_score(key, last, due)
  due = math.ceil(due)
  local top = last[due]
  if not top then
    top = redis.call('ZRANGE', key, string.format('(%d', due + 1), string.format('%d', due), 'BYSCORE', 'REV',
      'LIMIT', 0, 1, 'WITHSCORES')[2]
    top = top and tonumber(top)
  end
  local score = due
  if top and top >= due then score = top + QD_STEP end
  last[due] = score
  return score
end
