-- Leaderboard rank: one member's score, 1-based rank and metadata on the board of one period, with the board's size.
-- Candidate boards come as (zset, index) key pairs from KEYS[2] on, their [startMs, endMs) ranges as ARGV pairs
-- after the fixed ARGV; the script reads the board whose range holds `at` (or Redis server time).
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] order (string): desc | asc
-- ARGV[2] at (ms): the time whose board to read, '' = Redis server time
-- ARGV[3] boards (count): number of candidate boards B
-- ARGV[4] member (string): the member
-- Reply: [score: string, rank: number, count: number, meta: string | null] | []
--@include now-ms
local ref = ARGV[2] ~= '' and tonumber(ARGV[2]) or now_ms()
local zset, index
for b = 1, tonumber(ARGV[3]) do
  if tonumber(ARGV[3 + 2 * b]) <= ref and ref < tonumber(ARGV[4 + 2 * b]) then
    zset, index = KEYS[2 * b], KEYS[2 * b + 1]
    break
  end
end
if zset == nil then return redis.error_reply('LB_CLOCK_SKEW no candidate board holds time ' .. ref) end
local member = ARGV[4]
local prefix = redis.call('HGET', index, member)
if not prefix then return {} end
local entry = prefix .. ':' .. member
local score = redis.call('ZSCORE', zset, entry)
local rank
if ARGV[1] == 'desc' then rank = redis.call('ZREVRANK', zset, entry) else rank = redis.call('ZRANK', zset, entry) end
return { score, rank + 1, redis.call('ZCARD', zset), redis.call('HGET', KEYS[1], member) }
