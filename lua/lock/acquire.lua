-- Acquire: take a fenced lease on a lock (SET NX PX) and, when taken, increment the lock's fence counter.
-- The fence counter never expires, so fences strictly increase for as long as the Redis data lives.
-- KEYS[1] lock (string): holds the holder's token while the lock is held, expires after ttlMs
-- KEYS[2] fence (integer): the lock's fence counter, incremented once per successful acquisition
-- ARGV[1] token (string): random token of the new holder
-- ARGV[2] ttlMs (ms): lease time to live
-- Reply: [acquired: number, fence: number, pttlMs: number]
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  return { 1, fence, tonumber(ARGV[2]) }
end
return { 0, 0, redis.call('PTTL', KEYS[1]) }
