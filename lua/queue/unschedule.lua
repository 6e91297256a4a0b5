-- Unschedule: removes a schedule (jobs it created already are not touched).
-- KEYS[1] sched (hash): schedule name -> its declaration (JSON)
-- KEYS[2] schedz (zset): schedule name -> its next run time (server ms)
-- ARGV[1] name (string): the schedule
-- Reply: number
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
