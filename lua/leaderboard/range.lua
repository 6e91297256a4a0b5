-- Leaderboard range: the entries at 0-based ranks [start, stop] of one period's board with scores and metadata
-- (top and page). Candidate boards come as in rank.lua, but as zset keys only (KEYS[2], KEYS[3], ...); the all-time
-- board, which holds every time, comes alone and without `at` or bounds (ARGV[1..3] only): no time is read.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] order (string): desc | asc, or "desc rows" | "asc rows" for the reply with tables (see leaderboard-rows)
-- ARGV[2] start (index): first 0-based rank
-- ARGV[3] stop (index): last 0-based rank (inclusive)
-- ARGV[4] at (ms): the time whose board to read, '' = Redis server time (absent for the all-time board)
-- Reply: string | [rows: string, metas: Array<string | null>] | [head: number, rows: string[], metas: Array<string | null>]
-- (rows: element, score pairs as ZRANGE WITHSCORES gives them, elements with their arrival prefix, joined by "\0"
-- with their count appended; metas only when the leaderboard stores metadata; see leaderboard-rows)
--@include now-ms
--@include leaderboard-rows
local zset = KEYS[2]
if #ARGV > 3 then
  local ref = ARGV[4] ~= '' and ARGV[4] + 0 or now_ms()
  zset = nil
  for b = 2, #KEYS do
    if ARGV[2 * b + 1] + 0 <= ref and ref < ARGV[2 * b + 2] + 0 then
      zset = KEYS[b]
      break
    end
  end
  if zset == nil then return redis.error_reply('LB_CLOCK_SKEW no candidate board holds time ' .. ref) end
end
local order = ARGV[1]
local desc = order == 'desc' or order == 'desc rows'
local rows = redis.call(desc and 'ZREVRANGE' or 'ZRANGE', zset, ARGV[2], ARGV[3], 'WITHSCORES')
return lb_rows(rows, nil, #order > 4)
