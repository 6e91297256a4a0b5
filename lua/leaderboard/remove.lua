-- Leaderboard remove: deletes a member from every board passed (all-time and every period bucket that may still
-- be alive) and deletes its metadata. Boards come as (zset, index) key pairs from KEYS[2] on.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] member (string): the member to remove
-- Reply: number
local member = ARGV[1]
local removed = 0
for k = 2, #KEYS, 2 do
  local prefix = redis.call('HGET', KEYS[k + 1], member)
  if prefix then
    redis.call('ZREM', KEYS[k], prefix .. ':' .. member)
    redis.call('HDEL', KEYS[k + 1], member)
    removed = removed + 1
  end
end
redis.call('HDEL', KEYS[1], member)
return removed
