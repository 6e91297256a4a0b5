-- Partitions: records a queue's partition count on its first use and answers the count recorded. Every Queue and
-- Worker checks it once before anything else, so one configured with another count fails at once instead of adding
-- jobs to partitions no worker reads (or reading partitions no producer writes).
-- KEYS[1] meta (hash): the meta hash of the queue's own hash tag `{<name>}`: "partitions" the queue's count
-- ARGV[1] partitions (integer): the count this client is configured with
-- Reply: number
redis.call('HSETNX', KEYS[1], 'partitions', ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], 'partitions'))
