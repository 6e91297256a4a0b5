-- queue-add: creating one job, shared by lua/queue/add.lua and lua/queue/schedule-fire.lua. The job is the field
-- "j:<id>" of the partition's jobs hash (a cmsgpack array, see lua/_lib/queue.lua); HSETNX makes an id that exists
-- already a duplicate that creates and changes nothing.
local QA_PRIO_SHIFT = 17592186044416 -- 2^44, as in lua/_lib/queue.lua

-- Creates job `id` from 10 arguments starting at ARGV[b]: data, delayMs, priority, attempts, backoff type, backoff
-- delayMs, backoff maxDelayMs, jitter (per mille), resultTtlMs, group. keys: jobs, ready, delayed, prio. `clock` is a
-- table caching the server time ({ now = nil }). Returns created (boolean), wake (boolean: the job went outside the
-- ready stream).
local function qa_add(keys, id, b, clock)
  local delay, p = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local rec = cmsgpack.pack({ 'w', 0, tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5]),
    tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7]), tonumber(ARGV[b + 8]), p, ARGV[b + 9], ARGV[b], 0 })
  if redis.call('HSETNX', keys[1], 'j:' .. id, rec) == 0 then return false, false end
  if delay > 0 then
    clock.now = clock.now or now_ms()
    redis.call('ZADD', keys[3], clock.now + delay, p .. id)
    return true, true
  elseif p == 0 then
    redis.call('XADD', keys[2], '*', 'i', id)
    return true, false
  end
  clock.now = clock.now or now_ms()
  redis.call('ZADD', keys[4], p * QA_PRIO_SHIFT + clock.now, id)
  return true, true
end
