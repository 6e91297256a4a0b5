-- Leaderboard count: the number of members on one period's board. Candidate boards come as in rank.lua
-- (zset keys only: KEYS[1] is the first candidate's zset, KEYS[2] the second's).
-- KEYS[1] board (zset): first candidate board
-- ARGV[1] at (ms): the time whose board to read, '' = Redis server time
-- ARGV[2] boards (count): number of candidate boards B; their [startMs, endMs) follow as ARGV pairs
-- Reply: number
--@include now-ms
local ref = ARGV[1] ~= '' and tonumber(ARGV[1]) or now_ms()
for b = 1, tonumber(ARGV[2]) do
  if tonumber(ARGV[1 + 2 * b]) <= ref and ref < tonumber(ARGV[2 + 2 * b]) then
    return redis.call('ZCARD', KEYS[b])
  end
end
return redis.error_reply('LB_CLOCK_SKEW no candidate board holds time ' .. ref)
