-- Tick finish: record a run's outcome (only while the caller's token still owns the claim) and push it onto the
-- job's bounded history. The record is then kept recordTtlMs from now. Reply 0: the token no longer owns the claim
-- (another replica claimed the tick after this run's lease expired, or the record is gone); nothing is written.
-- A finish of a record this token already finished answers 1 and writes nothing: a retry after an unanswered finish.
-- HDEL comes first: on a full noeviction Redis a script's first write may not be one that adds data (HSET, LPUSH are
-- refused with OOM), while a run that was claimed must still have its outcome recorded.
-- KEYS[1] record (hash): the tick record
-- KEYS[2] history (list): newest-first JSON entries of finished runs
-- ARGV[1] token (string): the claim's token
-- ARGV[2] ok (0|1): whether the run succeeded
-- ARGV[3] error (string): the error message of a failed run ("" when ok)
-- ARGV[4] tick (integer): the tick, echoed into the history entry
-- ARGV[5] historyLimit (integer): how many entries the history keeps
-- ARGV[6] recordTtlMs (ms): how long the record and the history are kept
-- Reply: number
--@include now-ms
local record = redis.call('HMGET', KEYS[1], 'state', 'token', 'owner', 'fence', 'attempt', 'startMs')
if record[2] ~= ARGV[1] then
  return 0
end
if record[1] ~= 'running' then
  return 1
end
local now = now_ms()
local ok = ARGV[2] == '1'
redis.call('HDEL', KEYS[1], 'leaseUntil')
redis.call('HSET', KEYS[1], 'state', ok and 'ok' or 'failed', 'endMs', now, 'error', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local entry = {
  tick = ARGV[4], owner = record[3], fence = tonumber(record[4]), attempt = tonumber(record[5]),
  startMs = tonumber(record[6]), endMs = now, ok = ok,
}
if not ok then
  entry.error = ARGV[3]
end
redis.call('LPUSH', KEYS[2], cjson.encode(entry))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
