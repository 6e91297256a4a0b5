-- Tick history: the newest finished runs of a job, newest first.
-- KEYS[1] history (list): newest-first JSON entries of finished runs
-- ARGV[1] limit (integer): how many entries to return
-- Reply: string[]
return redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
