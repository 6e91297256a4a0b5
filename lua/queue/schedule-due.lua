-- Schedule due: a page of the schedules of one partition whose next run time has come (server time), with their
-- declarations, and the ms until the next one that has not.
-- KEYS[1] schedz (zset): schedule name -> its next run time (server ms)
-- KEYS[2] sched (hash): schedule name -> its declaration (JSON)
-- ARGV[1] limit (integer): most schedules in the reply
-- ARGV[2] offset (integer): due schedules to skip first (those a caller's earlier page left due: unreadable ones)
-- Reply: [nowMs: number, nextInMs: number, ...schedule: (string | number)[]]
--@include now-ms
local now = now_ms()
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', tonumber(ARGV[2]) or 0, tonumber(ARGV[1]),
  'WITHSCORES')
local out = { now, -1 }
for i = 1, #due, 2 do
  local n = #out
  out[n + 1], out[n + 2], out[n + 3] = due[i], tonumber(due[i + 1]), redis.call('HGET', KEYS[2], due[i]) or ''
end
local later = redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
if later[2] then out[2] = tonumber(later[2]) - now end
return out
