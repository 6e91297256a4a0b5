-- Tick unclaim: undo a claim whose durability was not confirmed, before its run started, only while the caller's
-- token still owns it. A first claim (attempt 1) is deleted, so the tick can be claimed again as if it never was; a
-- retry's claim (attempt 2+) is left as an abandoned run (its lease ended, no result), which a caller with
-- retryOnError claims again. The fence the claim took is skipped.
-- KEYS[1] record (hash): the tick record
-- ARGV[1] token (string): the claim's token
-- Reply: number
local record = redis.call('HMGET', KEYS[1], 'state', 'token', 'attempt')
if record[1] ~= 'running' or record[2] ~= ARGV[1] then
  return 0
end
if tonumber(record[3] or '1') <= 1 then
  redis.call('DEL', KEYS[1])
else
  -- HDEL first: a script whose first write adds data is refused on a full noeviction Redis (OOM), and the undo must
  -- still happen there.
  redis.call('HDEL', KEYS[1], 'token')
  redis.call('HSET', KEYS[1], 'leaseUntil', 0)
end
return 1
