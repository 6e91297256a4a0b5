-- Release: delete the lock only when the caller's token still holds it (never deletes someone else's lock).
-- KEYS[1] lock (string): the lock key
-- ARGV[1] token (string): the holder's token
-- Reply: number
--@include release-token
if rt_release(KEYS[1], ARGV[1]) then return 1 end
return 0
