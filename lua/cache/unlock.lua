-- Unlock: after a failed or discarded load, releases the fill lock when the caller's token still holds it, and
-- drops the caller's fill token from the entry when it was registered there instead.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock
-- ARGV[1] token (string): the caller's token
-- Reply: number
--@include release-token
if rt_release(KEYS[2], ARGV[1]) then return 1 end
redis.call('HDEL', KEYS[1], 'p:' .. ARGV[1])
return 0
