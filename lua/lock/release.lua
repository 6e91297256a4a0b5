-- Release: delete the lock only when the caller's token still holds it (never deletes someone else's lock).
-- KEYS[1] lock (string): the lock key
-- ARGV[1] token (string): the holder's token
-- Reply: number
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
