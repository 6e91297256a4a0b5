-- Session destroy: deletes a session and leaves a tombstone that makes later sets of the same id fail.
-- KEYS[1] session (string): the encoded session
-- KEYS[2] tombstone (string): set for tombstoneMs
-- ARGV[1] tombstoneMs (ms): how long the id stays destroyed (at least the longest request)
-- Reply: number
local existed = redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return existed
