-- Leaderboard around: the entries ranked within `radius` of a member on one period's board (the member included),
-- with scores and metadata. Candidate boards come as in rank.lua; the all-time board, which holds every time, comes
-- alone and without `at` or bounds (ARGV[1..3] only): no time is read. Nil when the member is not on the board.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] order (string): desc | asc, or "desc rows" | "asc rows" for the reply with tables (see leaderboard-rows)
-- ARGV[2] member (string): the member in the middle
-- ARGV[3] radius (count): entries to include on each side
-- ARGV[4] at (ms): the time whose board to read, '' = Redis server time (absent for the all-time board)
-- Reply: string | [rows: string, metas: Array<string | null>] | [start: number, rows: string[], metas: Array<string | null>] | null
-- (rows: element, score pairs as ZRANGE WITHSCORES gives them, elements with their arrival prefix, joined by "\0"
-- and followed by start, the 0-based rank of the first row, and their count; metas only when the leaderboard
-- stores metadata; see leaderboard-rows)
--@include now-ms
--@include leaderboard-rows
local zset, index = KEYS[2], KEYS[3]
if #ARGV > 3 then
  local ref = ARGV[4] ~= '' and ARGV[4] + 0 or now_ms()
  zset = nil
  for b = 1, (#KEYS - 1) / 2 do
    if ARGV[3 + 2 * b] + 0 <= ref and ref < ARGV[4 + 2 * b] + 0 then
      zset, index = KEYS[2 * b], KEYS[2 * b + 1]
      break
    end
  end
  if zset == nil then return redis.error_reply('LB_CLOCK_SKEW no candidate board holds time ' .. ref) end
end
local member = ARGV[2]
local prefix = redis.call('HGET', index, member)
if not prefix then return false end
local order = ARGV[1]
local desc = order == 'desc' or order == 'desc rows'
local rank = redis.call(desc and 'ZREVRANK' or 'ZRANK', zset, prefix .. ':' .. member)
-- An index naming an entry the board lacks (its sorted set evicted or deleted on its own): not on the board.
if not rank then return false end
local radius = ARGV[3] + 0
local start = rank - radius
if start < 0 then start = 0 end
return lb_rows(redis.call(desc and 'ZREVRANGE' or 'ZRANGE', zset, start, rank + radius, 'WITHSCORES'), start, #order > 4)
