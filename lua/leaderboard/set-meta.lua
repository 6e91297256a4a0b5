-- Leaderboard set meta: replaces the metadata of a member that has metadata or is on one of the boards passed (the
-- all-time board and every period bucket that may still be alive), so metadata is never stored for a member the
-- leaderboard does not know (nothing would ever delete it). Boards come as index hashes from KEYS[2] on. The client
-- picks them by its own clock, with the window of server times in which they are every board that can exist (see
-- remove.lua): a member found on none of them with server time outside that window may be on a board the clock
-- missed, so the answer is LB_CLOCK_SKEW rather than 0.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] member (string): the member
-- ARGV[2] meta (string): its metadata JSON
-- ARGV[3] after (ms): server time must lie after this (absent with the all-time board alone)
-- ARGV[4] before (ms): and before this
-- Reply: number
-- (1 stored, 0 not: the member has no metadata and is on none of the boards)
--@include now-ms
--@include leaderboard-window
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
if not known then
  if #ARGV > 2 then
    local skew = lb_outside_window(ARGV[3], ARGV[4])
    if skew then return skew end
  end
  return 0
end
redis.call('HSET', KEYS[1], member, ARGV[2])
return 1
