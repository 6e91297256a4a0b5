-- Counts: jobs of one partition by state. Waiting counts ready-stream entries not read yet (an entry of a job cancelled
-- while it waited included, until a fetch drops it), priority 1-9 jobs and jobs waiting for a group slot.
-- KEYS[1] ready (stream): ready jobs of priority 0
-- KEYS[2] prio (zset): jobs of priority 1-9
-- KEYS[3] gwait (zset): jobs waiting for a slot of their group
-- KEYS[4] delayed (zset): delayed and retrying jobs
-- KEYS[5] active (hash): running jobs
-- KEYS[6] done (zset): completed jobs kept
-- KEYS[7] dead (zset): dead jobs kept
-- KEYS[8] cancelled (zset): cancelled jobs kept
-- KEYS[9] meta (hash): "paused"
-- ARGV: none
-- Reply: [waiting: number, delayed: number, active: number, completed: number, dead: number, cancelled: number, paused: number]
--@include queue-due
--@include queue
return {
  redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]),
  redis.call('HLEN', KEYS[5]) - redis.call('HEXISTS', KEYS[5], Q_WIDE),
  redis.call('ZCARD', KEYS[6]),
  redis.call('ZCARD', KEYS[7]),
  redis.call('ZCARD', KEYS[8]),
  redis.call('HEXISTS', KEYS[9], 'paused'),
}
