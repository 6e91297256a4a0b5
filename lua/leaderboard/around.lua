-- Leaderboard around: the entries ranked within `radius` of a member on one period's board (the member included),
-- with scores and metadata. Candidate boards come as in rank.lua. Empty when the member is not on the board.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] order (string): desc | asc
-- ARGV[2] at (ms): the time whose board to read, '' = Redis server time
-- ARGV[3] boards (count): number of candidate boards B
-- ARGV[4] member (string): the member in the middle
-- ARGV[5] radius (count): entries to include on each side
-- Reply: [start: number, count: number, rows: string[], metas: Array<string | null>] | []
-- (rows: element, score pairs as ZRANGE WITHSCORES gives them; metas: the metadata of each row's member)
--@include now-ms
local ref = ARGV[2] ~= '' and tonumber(ARGV[2]) or now_ms()
local zset, index
for b = 1, tonumber(ARGV[3]) do
  if tonumber(ARGV[4 + 2 * b]) <= ref and ref < tonumber(ARGV[5 + 2 * b]) then
    zset, index = KEYS[2 * b], KEYS[2 * b + 1]
    break
  end
end
if zset == nil then return redis.error_reply('LB_CLOCK_SKEW no candidate board holds time ' .. ref) end
local member, radius = ARGV[4], tonumber(ARGV[5])
local prefix = redis.call('HGET', index, member)
if not prefix then return {} end
local desc = ARGV[1] == 'desc'
local rank
if desc then
  rank = redis.call('ZREVRANK', zset, prefix .. ':' .. member)
else
  rank = redis.call('ZRANK', zset, prefix .. ':' .. member)
end
local start = rank - radius
if start < 0 then start = 0 end
local rows = redis.call(desc and 'ZREVRANGE' or 'ZRANGE', zset, start, rank + radius, 'WITHSCORES')
local members = {}
for i = 1, #rows, 2 do members[(i + 1) / 2] = string.sub(rows[i], 18) end
-- The rows go back as Redis gave them (elements keep their arrival prefix, stripped by the client): no table copy.
return { start, redis.call('ZCARD', zset), rows, redis.call('HMGET', KEYS[1], unpack(members)) }
