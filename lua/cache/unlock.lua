-- Unlock: after a failed or discarded load, drops the caller's fill token from the entry and releases the fill
-- lock when the caller's token still holds it.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock
-- ARGV[1] token (string): the caller's token
-- Reply: number
redis.call('HDEL', KEYS[1], 'p:' .. ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
