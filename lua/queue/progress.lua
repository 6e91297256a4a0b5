-- Progress: stores a running job's progress, only while the caller's fence is the job's current one.
-- KEYS[1] jobs (hash): job fields ("p:<id>" progress)
-- KEYS[2] active (hash): running job -> fence of its current delivery
-- ARGV[1] id (string): the job
-- ARGV[2] fence (integer): the caller's delivery
-- ARGV[3] progress (string): the encoded progress value
-- Reply: number
--@include queue-fence
if not qf_is(redis.call('HGET', KEYS[2], ARGV[1]), ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'p:' .. ARGV[1], ARGV[3])
return 1
