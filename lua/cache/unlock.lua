-- Unlock: releases a fill lock only when the caller's token still holds it (after a failed or discarded load).
-- KEYS[1] lock (string): the fill lock
-- ARGV[1] token (string): the caller's token
-- Reply: number
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
