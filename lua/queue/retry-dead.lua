-- Retry dead: moves a dead job back to the queue with a fresh set of attempts (its last error is kept until then).
-- Replies 0 when the job is not a dead letter.
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
-- Reply: number
--@include now-ms
--@include queue-due
--@include queue
--@include queue-retry
local K = q_keys()
local id = ARGV[1]
if redis.call('ZREM', K.dead, id) == 0 then return 0 end
local raw = redis.call('HGET', K.jobs, 'j:' .. id)
if not raw then return 0 end
local rec = cmsgpack.unpack(raw)
rec[Q_STATE], rec[Q_ATTEMPTS], rec[Q_FINISHED] = 'w', 0, 0
redis.call('HSET', K.jobs, 'j:' .. id, cmsgpack.pack(rec))
if q_enqueue(K, id, rec[Q_PRIO], now_ms()) then q_wake(K) end
return 1
