-- Leaderboard set meta: replaces the metadata of a member that has metadata or is on one of the boards passed (the
-- all-time board and every period bucket that may still be alive), so metadata is never stored for a member the
-- leaderboard does not know (nothing would ever delete it). Boards come as index hashes from KEYS[2] on.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] member (string): the member
-- ARGV[2] meta (string): its metadata JSON
-- Reply: number
-- (1 stored, 0 not: the member has no metadata and is on none of the boards)
local member = ARGV[1]
local known = redis.call('HGET', KEYS[1], member)
if not known then
  for k = 2, #KEYS do
    if redis.call('HGET', KEYS[k], member) then
      known = true
      break
    end
  end
end
if not known then return 0 end
redis.call('HSET', KEYS[1], member, ARGV[2])
return 1
