-- Tick extend: push a running claim's lease forward (server time), only while the caller's token still owns it.
-- KEYS[1] record (hash): the tick record
-- ARGV[1] token (string): the claim's token
-- ARGV[2] ttlMs (ms): new lease time to live from now
-- Reply: number
--@include now-ms
local record = redis.call('HMGET', KEYS[1], 'state', 'token')
if record[1] ~= 'running' or record[2] ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'leaseUntil', now_ms() + tonumber(ARGV[2]))
return 1
