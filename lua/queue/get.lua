-- Get: one job's record, with its state ('waiting', 'delayed', 'active', 'completed', 'dead', 'cancelled'). Empty
-- reply when the job does not exist (never added, or removed by retention); a completed or cancelled job whose
-- resultTtlMs has passed reads as gone even before a trim removes it.
-- KEYS[1] jobs (hash): job fields
-- KEYS[2] active (hash): running job -> fence of its current delivery
-- KEYS[3] delayed (zset): "<priority digit><id>" -> due (server ms)
-- KEYS[4] done (zset): completed job -> expiry (server ms)
-- KEYS[5] cancelled (zset): cancelled job -> expiry (server ms)
-- ARGV[1] id (string): the job
-- Reply: [state: string, attempts: number, maxAttempts: number, data: string, result: string | null, error: string | null, progress: string | null, dueAt: number, finishedAt: number, group: string, priority: number, fence: number] | []
--@include now-ms
local id = ARGV[1]
local f = redis.call('HMGET', KEYS[1], 'j:' .. id, 'r:' .. id, 'e:' .. id, 'p:' .. id)
if not f[1] then return {} end
local rec = cmsgpack.unpack(f[1])
local st, finished = rec[1], rec[12]
-- A waiting record with a result field is a completed job (lua/_lib/queue.lua).
local completed = st == 'w' and f[2]
if completed then st = 'c' end
if st == 'c' or st == 'x' then
  local expiry = redis.call('ZSCORE', st == 'c' and KEYS[4] or KEYS[5], id)
  if not expiry or tonumber(expiry) <= now_ms() then return {} end
  if completed then
    rec[2] = rec[2] + 1
    finished = tonumber(expiry) - rec[8]
  end
end
local names = { c = 'completed', D = 'dead', x = 'cancelled' }
local state = names[st]
local dueAt, fence = 0, 0
if not state then
  -- The active value starts with the fence (lua/_lib/queue-fence.lua).
  fence = tonumber(string.match(redis.call('HGET', KEYS[2], id) or '0', '^%d+'))
  if fence > 0 then
    state = 'active'
  else
    local due = redis.call('ZSCORE', KEYS[3], rec[9] .. id)
    if due then
      state = 'delayed'
      -- Rounded up: a score may carry a fraction of a ms (lua/_lib/queue-due.lua).
      dueAt = math.ceil(tonumber(due))
    else
      state = 'waiting'
    end
  end
end
return { state, rec[2], rec[3], rec[11], f[2], f[3], f[4], dueAt, finished, rec[10], rec[9], fence }
