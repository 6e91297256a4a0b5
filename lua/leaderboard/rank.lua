-- Leaderboard rank: one member's score, 1-based rank and metadata on the board of one period, with the board's size.
-- Candidate boards come as (zset, index) key pairs from KEYS[2] on, their [startMs, endMs) ranges as ARGV pairs
-- after the fixed ARGV; the script reads the board whose range holds `at` (or Redis server time). The all-time
-- board, which holds every time, comes alone and without `at` or bounds (ARGV[1..2] only): no time is read.
-- KEYS[1] meta (hash): member -> metadata JSON
-- ARGV[1] order (string): desc | asc
-- ARGV[2] member (string): the member
-- ARGV[3] at (ms): the time whose board to read, '' = Redis server time (absent for the all-time board)
-- Reply: string | null
-- ("<score>\0<rank>\0<count>" and "\0<metadata JSON>" when the member has metadata; one string, the cheapest reply
-- inside Redis: JSON holds no raw "\0". Nil when the member is not on the board.)
--@include now-ms
local zset, index = KEYS[2], KEYS[3]
if #ARGV > 2 then
  local ref = ARGV[3] ~= '' and ARGV[3] + 0 or now_ms()
  zset = nil
  for b = 1, (#KEYS - 1) / 2 do
    if ARGV[2 + 2 * b] + 0 <= ref and ref < ARGV[3 + 2 * b] + 0 then
      zset, index = KEYS[2 * b], KEYS[2 * b + 1]
      break
    end
  end
  if zset == nil then return redis.error_reply('LB_CLOCK_SKEW no candidate board holds time ' .. ref) end
end
local member = ARGV[2]
local prefix = redis.call('HGET', index, member)
if not prefix then return false end
local entry = prefix .. ':' .. member
local rank = redis.call(ARGV[1] == 'desc' and 'ZREVRANK' or 'ZRANK', zset, entry)
-- An index naming an entry the board lacks (its sorted set evicted or deleted on its own): not on the board.
if not rank then return false end
-- The integers go into the text with %d: `..` would format them with %.14g, which costs Redis several times more.
local head = string.format('%s\0%d\0%d', redis.call('ZSCORE', zset, entry), rank + 1, redis.call('ZCARD', zset))
local meta = redis.call('HGET', KEYS[1], member)
if meta then return head .. '\0' .. meta end
return head
