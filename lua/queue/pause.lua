-- Pause: pauses (fetches hand out nothing; running jobs go on) or resumes one partition; resuming wakes blocked
-- workers.
-- KEYS[1] meta (hash): "paused"
-- KEYS[2] wake (stream): wake-up marks
-- ARGV[1] paused (integer): 1 to pause, 0 to resume
-- Reply: number
if ARGV[1] == '1' then return redis.call('HSET', KEYS[1], 'paused', '1') end
local n = redis.call('HDEL', KEYS[1], 'paused')
redis.call('XADD', KEYS[2], 'MAXLEN', '1', '*', 'w', '1')
return n
