-- Leaderboard count: the number of members on one period's board. Candidate boards come as in rank.lua
-- (zset keys only: KEYS[1] is the first candidate's zset, KEYS[2] the second's); the all-time board, which holds
-- every time, comes alone and without arguments: no time is read.
-- KEYS[1] board (zset): first candidate board
-- ARGV[1] at (ms): the time whose board to read, '' = Redis server time (absent for the all-time board); the
-- candidates' [startMs, endMs) follow as ARGV pairs
-- Reply: number
--@include now-ms
if #ARGV == 0 then return redis.call('ZCARD', KEYS[1]) end
local ref = ARGV[1] ~= '' and ARGV[1] + 0 or now_ms()
for b = 1, #KEYS do
  if ARGV[2 * b] + 0 <= ref and ref < ARGV[1 + 2 * b] + 0 then
    return redis.call('ZCARD', KEYS[b])
  end
end
return redis.error_reply('LB_CLOCK_SKEW no candidate board holds time ' .. ref)
