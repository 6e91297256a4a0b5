-- Extend: reset a lease's time to live, only while the caller's token still holds the lock.
-- KEYS[1] lock (string): the lock key
-- ARGV[1] token (string): the holder's token
-- ARGV[2] ttlMs (ms): new time to live from now
-- Reply: number
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
