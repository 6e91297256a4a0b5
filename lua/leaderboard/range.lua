-- Leaderboard range: the entries at 0-based ranks [start, stop] of one period's board with scores and metadata,
-- plus the board's size (top and page). Candidate boards come as in rank.lua.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] order (string): desc | asc
-- ARGV[2] at (ms): the time whose board to read, '' = Redis server time
-- ARGV[3] boards (count): number of candidate boards B
-- ARGV[4] start (index): first 0-based rank
-- ARGV[5] stop (index): last 0-based rank (inclusive)
-- Reply: [count: number, rows?: string[], metas?: Array<string | null>]
-- (rows: element, score pairs as ZRANGE WITHSCORES gives them; metas: the metadata of each row's member)
--@include now-ms
local ref = ARGV[2] ~= '' and tonumber(ARGV[2]) or now_ms()
local zset
for b = 1, tonumber(ARGV[3]) do
  if tonumber(ARGV[4 + 2 * b]) <= ref and ref < tonumber(ARGV[5 + 2 * b]) then
    zset = KEYS[2 * b]
    break
  end
end
if zset == nil then return redis.error_reply('LB_CLOCK_SKEW no candidate board holds time ' .. ref) end
local cmd = ARGV[1] == 'desc' and 'ZREVRANGE' or 'ZRANGE'
local rows = redis.call(cmd, zset, ARGV[4], ARGV[5], 'WITHSCORES')
local count = redis.call('ZCARD', zset)
if #rows == 0 then return { count } end
-- The rows go back as Redis gave them (elements keep their arrival prefix, stripped by the client): no table copy.
local members = {}
for i = 1, #rows, 2 do members[(i + 1) / 2] = string.sub(rows[i], 18) end
return { count, rows, redis.call('HMGET', KEYS[1], unpack(members)) }
