-- Tick extend: push a running claim's lease forward (server time), only while the caller's token still owns it, and
-- keep the record at least recordTtlMs past the new lease end (never shortening it), so it cannot expire under a run.
-- PEXPIRE comes before HSET: on a full noeviction Redis a script's first write may not be one that adds data (HSET
-- is refused with OOM), while a running claim must still be extended.
-- KEYS[1] record (hash): the tick record
-- ARGV[1] token (string): the claim's token
-- ARGV[2] ttlMs (ms): new lease time to live from now
-- ARGV[3] recordTtlMs (ms): how long the record is kept after the lease ends
-- Reply: number
--@include now-ms
local record = redis.call('HMGET', KEYS[1], 'state', 'token')
if record[1] ~= 'running' or record[2] ~= ARGV[1] then
  return 0
end
local ttl = tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl + tonumber(ARGV[3]), 'GT')
redis.call('HSET', KEYS[1], 'leaseUntil', now_ms() + ttl)
return 1
