-- Finish: records the outcome of a batch of deliveries of one partition. A delivery whose fence is no longer the job's
-- current one (its lease expired and the job was reclaimed, it was cancelled or handed back) is refused and changes
-- nothing. A completion stores the result for the job's resultTtlMs (the record is not rewritten: the result field
-- marks the job completed); a failure schedules the next attempt after the backoff (server time), or moves the job to
-- the dead letters once its attempts are used up. Retention trims completed and dead jobs; completed and dead ids are
-- announced on the partition's channel for Queue.result(). Replies per delivery 0 refused, 1 completed, 2 retry, 3 dead,
-- 4 refused while the job is completed.
-- KEYS[1] jobs (hash): job fields
-- KEYS[2] ready (stream): ready jobs of priority 0
-- KEYS[3] delayed (zset): "<priority digit><id>" -> due (server ms)
-- KEYS[4] prio (zset): jobs of priority 1-9
-- KEYS[5] leases (zset): running job -> lease deadline (server ms)
-- KEYS[6] active (hash): running job -> its current delivery: "<fence>.0<resultTtlMs>" or "<fence>" (grouped jobs)
-- KEYS[7] done (zset): completed job -> expiry (server ms)
-- KEYS[8] dead (zset): dead job -> time of death (server ms)
-- KEYS[9] cancelled (zset): cancelled job -> expiry (server ms)
-- KEYS[10] meta (hash): "f" fence counter, "paused"
-- KEYS[11] groups (hash): "c:<group>" running count, "r:<group>" rate-limit state
-- KEYS[12] gwait (zset): jobs waiting for a slot of their group
-- KEYS[13] wake (stream): wake-up marks
-- ARGV[1] count (integer): deliveries in this call
-- ARGV[2] maxDone (integer): most completed jobs kept
-- ARGV[3] maxDead (integer): most dead jobs kept
-- ARGV[4] deadAgeMs (ms): how long dead jobs are kept
-- ARGV[5] pub (string): 'SPUBLISH' to announce completed and dead jobs, '' not to
-- ARGV[6] channel (string): the partition's channel
-- ARGV[7] u (number): a random number in [0, 1) for the backoff jitter (the i-th failure of the call draws the
-- fractional part of u + i times the golden ratio: the failures of one call get draws spread over [0, 1))
-- ARGV[8] delivery (list): 3 arguments per delivery, repeated: id, fence, outcome (the kind, 'c' completed, 'f' failed
-- or 'F' failed and not to be retried, followed by the result or error text)
-- Reply: number[]
--@include now-ms
--@include queue
--@include queue-fence
local K = q_keys()
local now = now_ms()
local count = tonumber(ARGV[1])
local maxDone, maxDead, deadAge = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ids = {}
for i = 1, count do ids[i] = ARGV[5 + 3 * i] end
local fences = redis.call('HMGET', K.active, unpack(ids))
local live, actives, out = {}, {}, {}
for i = 1, count do
  if qf_is(fences[i], ARGV[6 + 3 * i]) then
    live[#live + 1] = i
    actives[#live] = fences[i]
    out[i] = 0
  elseif redis.call('HEXISTS', K.jobs, 'r:' .. ids[i]) == 1 then
    -- Refused, and the job is completed: the client tells a completion it sent again after losing the first reply
    -- (which took effect) from one another delivery beat.
    out[i] = 4
  else
    out[i] = 0
  end
end
if #live == 0 then return out end
local liveIds = {}
for j, i in ipairs(live) do liveIds[j] = ids[i] end
redis.call('HDEL', K.active, unpack(liveIds))
redis.call('ZREM', K.leases, unpack(liveIds))
local writes, done, lines = {}, {}, {}
local u, failures = tonumber(ARGV[7]), 0
-- Done expiry as a string per resultTtlMs (most jobs share one): redis.call would format the number for every job.
local expiries = {}
-- q_bury and q_retry_or_bury (lua/_lib/queue-retry.lua), built at the call's first failure: a call of completions
-- builds none of the functions a failure needs.
local bury, retry = nil, nil
for j, i in ipairs(live) do
  local id, outcome = ids[i], ARGV[7 + 3 * i]
  local kind = string.sub(outcome, 1, 1)
  -- A completion of a job without a group needs only its resultTtlMs, which its active value carries; a failure, a
  -- grouped job and a value written by an earlier version ("<fence>" alone) read the record.
  local ttl, group, rec = nil, '', nil
  if kind == 'c' then ttl = string.match(actives[j], '^%d+%.0(%d+)$') end
  if not ttl then
    local raw = redis.call('HGET', K.jobs, 'j:' .. id)
    if raw then
      rec = cmsgpack.unpack(raw)
      ttl, group = rec[Q_TTL], rec[Q_GROUP]
    end
  end
  if ttl then
    q_group_release(K, group)
    if kind == 'c' then
      -- The record stays as it was while the job waited: its result field marks it completed (lua/_lib/queue.lua).
      local w = #writes
      writes[w + 1], writes[w + 2] = 'r:' .. id, string.sub(outcome, 2)
      local expiry = expiries[ttl]
      if not expiry then
        expiry = string.format('%d', now + ttl)
        expiries[ttl] = expiry
      end
      done[#done + 1] = expiry
      done[#done + 1] = id
      lines[#lines + 1] = 'c ' .. id
      out[i] = 1
    else
      if not bury then
--@include queue-due
--@include queue-retry
        bury, retry = q_bury, q_retry_or_bury
      end
      rec[Q_ATTEMPTS] = rec[Q_ATTEMPTS] + 1
      local fate
      if kind == 'F' then
        -- Not retried, but its attempts allowed stay as they were: retryDead gives the job all of them again.
        bury(K, id, rec, string.sub(outcome, 2), now, maxDead, deadAge)
        fate = 'dead'
      else
        local ui = (u + failures * 0.6180339887498949) % 1
        failures = failures + 1
        fate = retry(K, id, rec, string.sub(outcome, 2), now, ui, maxDead, deadAge)
      end
      if fate == 'dead' then
        lines[#lines + 1] = 'D ' .. id
        out[i] = 3
      else
        out[i] = 2
      end
    end
  end
end
if #writes > 0 then
  redis.call('HSET', K.jobs, unpack(writes))
  redis.call('ZADD', K.done, unpack(done))
  q_trim(K, K.done, now, maxDone)
end
q_publish(ARGV[5], ARGV[6], lines)
return out
