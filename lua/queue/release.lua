-- Release: hands running deliveries of one partition back to the queue at once (a worker closing), each only while
-- its fence is still the job's current one. The attempt is not counted: the job waits again at the end of the ready
-- stream (or in the prio zset), and a late completion of the handed-back delivery is refused.
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
-- ARGV[1] delivery (list): 2 arguments per delivery, repeated: id, fence
-- Reply: number
--@include now-ms
--@include queue-due
--@include queue
--@include queue-retry
--@include queue-fence
local K = q_keys()
local now = now_ms()
local released, wake = 0, false
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if qf_is(redis.call('HGET', K.active, id), ARGV[i + 1]) then
    local raw = redis.call('HGET', K.jobs, 'j:' .. id)
    if raw then
      local rec = cmsgpack.unpack(raw)
      q_deactivate(K, id, rec)
      if q_enqueue(K, id, rec[Q_PRIO], now) then wake = true end
      released = released + 1
    end
  end
end
if wake then q_wake(K) end
return released
