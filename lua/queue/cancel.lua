-- Cancel: cancels a job that has not finished. A waiting or delayed job will not run; a running one loses its
-- delivery (its worker learns it at the next lease renewal and its handler's signal aborts; its completion is
-- refused). The job is kept, state cancelled, for its resultTtlMs. Replies 0 for a finished or unknown job.
-- KEYS[1] jobs (hash): job fields
-- KEYS[2] ready (stream): ready jobs of priority 0
-- KEYS[3] delayed (zset): "<priority digit><id>" -> due (server ms)
-- KEYS[4] prio (zset): jobs of priority 1-9
-- KEYS[5] leases (zset): running job -> lease deadline (server ms)
-- KEYS[6] active (hash): running job -> fence of its current delivery
-- KEYS[7] done (zset): completed job -> expiry (server ms)
-- KEYS[8] dead (zset): dead job -> time of death (server ms)
-- KEYS[9] cancelled (zset): cancelled job -> expiry (server ms)
-- KEYS[10] meta (hash): "f" fence counter, "paused"
-- KEYS[11] groups (hash): "c:<group>" running count, "r:<group>" rate-limit state
-- KEYS[12] gwait (zset): jobs waiting for a slot of their group
-- KEYS[13] wake (stream): wake-up marks
-- ARGV[1] id (string): the job
-- ARGV[2] maxCancelled (integer): most cancelled jobs kept
-- ARGV[3] pub (string): 'SPUBLISH' to announce the cancellation, '' not to
-- ARGV[4] channel (string): the partition's channel
-- Reply: number
--@include now-ms
--@include queue-due
--@include queue
--@include queue-retry
local K = q_keys()
local id = ARGV[1]
local raw = redis.call('HGET', K.jobs, 'j:' .. id)
if not raw then return 0 end
local rec = cmsgpack.unpack(raw)
-- Finished already (a result field marks a completed job: lua/_lib/queue.lua).
if rec[Q_STATE] ~= 'w' or redis.call('HEXISTS', K.jobs, 'r:' .. id) == 1 then return 0 end
local now = now_ms()
local running = redis.call('HEXISTS', K.active, id) == 1
if running then q_deactivate(K, id, rec) end
redis.call('ZREM', K.delayed, rec[Q_PRIO] .. id)
-- A job its group's release handed the slot that freed (its hand-off marker, lua/_lib/queue.lua q_group_wake; or, put
-- back by an earlier version, in band 0 of the prio zset): that slot goes on to the group's next waiter (below).
local released = redis.call('HDEL', K.jobs, 'h:' .. id) == 1
  or tonumber(redis.call('ZSCORE', K.prio, id) or Q_PRIO_SHIFT) < Q_PRIO_SHIFT
redis.call('ZREM', K.prio, id)
-- A ready-stream or gwait entry of the job stays until a fetch drops it (it reads the state).
rec[Q_STATE] = 'x'
rec[Q_FINISHED] = now
redis.call('HSET', K.jobs, 'j:' .. id, cmsgpack.pack(rec))
-- A waiting job of a group that runs nothing: it may be one an earlier version handed the group's free slot to
-- without a marker, and nothing running would hand it on: the group's next waiter gets it. When another job holds a
-- handed slot already, the fetch that finds the group full puts this one back at its place in the line.
local g = rec[Q_GROUP]
if not running and g ~= '' and (released or (tonumber(redis.call('HGET', K.groups, 'c:' .. g)) or 0) <= 0) then
  q_group_wake(K, g)
end
redis.call('ZADD', K.cancelled, now + rec[Q_TTL], id)
q_trim(K, K.cancelled, now, tonumber(ARGV[2]))
q_publish(ARGV[3], ARGV[4], { 'x ' .. id })
return 1
