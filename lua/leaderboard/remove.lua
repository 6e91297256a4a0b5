-- Leaderboard remove: deletes a member from every board passed (all-time and every period bucket that may still
-- be alive) and deletes its metadata. Boards come as (zset, index) key pairs from KEYS[2] on. The client picks the
-- boards by its own clock; with period boards it also sends the window of server times in which they are every board
-- that can exist (later than the expiry of the newest bucket left out below them, earlier than the first time a
-- submit could reach a bucket after them), and a server time outside it (a clock off by more than the tolerance near
-- a boundary, or near the oldest board's expiry) removes nothing: LB_CLOCK_SKEW.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] member (string): the member to remove
-- ARGV[2] after (ms): server time must lie after this (absent with the all-time board alone: no time is read)
-- ARGV[3] before (ms): and before this
-- Reply: number
--@include now-ms
--@include leaderboard-window
if #ARGV > 1 then
  local skew = lb_outside_window(ARGV[2], ARGV[3])
  if skew then return skew end
end
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
