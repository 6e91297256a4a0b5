-- queue-retry: putting a job back to wait, retrying or burying it, for lua/queue/*.lua. Include after queue-due and
-- queue. Kept out of lua/_lib/queue.lua so that a script reaching none of them builds none of their functions (each
-- function a script defines is a closure built on every call that reaches it): lua/queue/finish.lua includes this file
-- at its first failure only.

-- The prio zset score of a job of priority `prio` enqueued at `now`: prio * 2^44 + now, or 1 more than the last score
-- of that priority when that one is not lower (jobs enqueued in the same ms: equal scores would be served in id
-- order, not FIFO). `last` caches each priority's last score for the rest of the script call.
local function q_prio_score(key, last, prio, now)
  local base = prio * Q_PRIO_SHIFT
  local top = last[prio]
  if not top then
    top = redis.call('ZRANGE', key, string.format('(%d', base + Q_PRIO_SHIFT), string.format('%d', base), 'BYSCORE',
      'REV', 'LIMIT', 0, 1, 'WITHSCORES')[2]
    top = top and tonumber(top) or 0
  end
  local score = base + now
  if score <= top then score = top + 1 end
  last[prio] = score
  return score
end

-- Puts a waiting job where workers find it: the ready stream (priority 0) or the prio zset (returns true: wake).
local function q_enqueue(K, id, prio, now)
  if prio == 0 then
    redis.call('XADD', K.ready, '*', 'i', id)
    return false
  end
  K.plast = K.plast or {}
  redis.call('ZADD', K.prio, q_prio_score(K.prio, K.plast, prio, now), id)
  return true
end

-- The delay before retry number `attempt` + 1 after `attempt` failed attempts: fixed, or exponential (delay *
-- 2^(attempt-1)) capped at the maximum, less up to jitter (per mille) of it, scaled by the caller's random u in [0, 1).
local function q_backoff(rec, attempt, u)
  local btype, delay = rec[Q_BTYPE], rec[Q_BDELAY]
  if btype == 0 or delay == 0 then return 0 end
  if btype == 2 then delay = delay * 2 ^ (attempt - 1) end
  local max = rec[Q_BMAX]
  if max > 0 and delay > max then delay = max end
  return math.floor(delay - delay * rec[Q_JITTER] / 1000 * u)
end

-- Ends the current delivery of a running job: no lease, no fence, group slot released.
local function q_deactivate(K, id, rec)
  redis.call('HDEL', K.active, id)
  redis.call('ZREM', K.leases, id)
  q_group_release(K, rec[Q_GROUP])
end

-- Moves a job whose attempts are used up to the dead letters with its last error.
local function q_bury(K, id, rec, err, now, maxDead, deadAgeMs)
  rec[Q_STATE] = 'D'
  rec[Q_FINISHED] = now
  redis.call('HSET', K.jobs, 'j:' .. id, cmsgpack.pack(rec), 'e:' .. id, err)
  redis.call('ZADD', K.dead, now, id)
  q_trim(K, K.dead, now - deadAgeMs, maxDead)
end

-- A failed (or lost) attempt: `rec[Q_ATTEMPTS]` already counts it. Schedules the retry after the backoff, or buries the
-- job. Returns 'retry' or 'dead'.
local function q_retry_or_bury(K, id, rec, err, now, u, maxDead, deadAgeMs)
  if rec[Q_ATTEMPTS] >= rec[Q_MAX] then
    q_bury(K, id, rec, err, now, maxDead, deadAgeMs)
    return 'dead'
  end
  redis.call('HSET', K.jobs, 'j:' .. id, cmsgpack.pack(rec), 'e:' .. id, err)
  local delay = q_backoff(rec, rec[Q_ATTEMPTS], u)
  -- A worker waiting for work learns the new due time from the wake stream.
  if delay > 0 then
    -- FIFO among jobs due in the same ms (lua/_lib/queue-due.lua, included before this file).
    K.dlast = K.dlast or {}
    redis.call('ZADD', K.delayed, qd_score(K.delayed, K.dlast, now + delay), rec[Q_PRIO] .. id)
    q_wake(K)
  elseif q_enqueue(K, id, rec[Q_PRIO], now) then
    q_wake(K)
  end
  return 'retry'
end
