-- Leaderboard submit: applies the update policy of one or more submissions to every configured period board at once.
-- Each board is a sorted set (the real score as ZSET score; element "<16-digit arrival prefix>:<member>", so equal
-- scores order by arrival) plus an index hash member -> arrival prefix. Boards come after the two fixed keys as
-- (zset, index) key pairs: KEYS[3], KEYS[4] is board 1, KEYS[5], KEYS[6] board 2, and so on.
-- After the fixed ARGV come, per board: `-periodIndex` alone for a board that holds every time and never expires
-- (the all-time board), else periodIndex (1..P), startMs, endMs, expireAtMs; then per item: member, score, meta
-- ('' = keep the stored metadata), at ('' = Redis server time). The number of boards is (#KEYS - 2) / 2, the number
-- of items what is left of ARGV / 4, the number of configured periods P the largest periodIndex.
-- For each item and period the script uses the board of that period whose [startMs, endMs) holds the item's time.
-- Every check (clock skew, closed period, increment leaving +-(2^53 - 1)) runs before the first write: an error changes nothing.
-- KEYS[1] meta (hash): member -> metadata JSON, shared by every board of the leaderboard
-- KEYS[2] seq (integer): arrival counter of the leaderboard (numbers reserved in one INCRBY per script; gaps order nothing)
-- ARGV[1] update (string): best | replace | increment
-- ARGV[2] order (string): desc | asc
-- ARGV[3] toleranceMs (ms): an explicit `at` may lie at most this far after server time
-- Reply: string | Array<string | number>
-- (flat: per item, per period: score, rank, updated 0/1, index of the board used; one item on one board: the string
-- "<score> <rank> <updated 0/1>")
--@include leaderboard-put
-- The shortest call, one item without metadata or time on the all-time board alone: ARGV update, order, member, score
-- (no other call has 4 arguments).
if #ARGV == 4 then
  local text = ARGV[4]
  local prefix, newText, rank, updated = lb_put(nil, 1, ARGV[3], text, text + 0, nil, nil, nil, nil)
  if prefix == false then return redis.error_reply(newText) end
  return newText .. ' ' .. string.format('%d', rank) .. (updated == 1 and ' 1' or ' 0')
end
--@include now-ms
--@include leaderboard-submit
-- One item on one board (the usual call): no tables; the reply is one string "<score> <rank> <updated>" (the rank
-- by %d: half the cost of `..`, which formats a number with %.14g; the same digits for any rank below 10^14).
local single = lb_single_at()
if single then
  local text, rank, updated = lb_single(single)
  if text == nil then return redis.error_reply(rank) end
  return text .. ' ' .. string.format('%d', rank) .. (updated == 1 and ' 1' or ' 0')
end
--@include leaderboard-submit-multi
-- One item on one board per period: checks every board, then applies, with no table but the reply.
local multi = lb_multi_at()
if multi and #ARGV == multi + 3 then
  local reply = {}
  local ok, err = lb_multi(multi, nil, (#KEYS - 2) / 2, reply, 1)
  if not ok then return redis.error_reply(err) end
  return reply
end
--@include leaderboard-submit-many

local s, a = lb_state()

-- Pass 1: pick the boards of every item and check everything before writing anything.
local items, overlay = {}, {}
for i = 1, s.N do
  local item, err = lb_check(s, ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], overlay)
  if item == nil then return redis.error_reply(err) end
  items[i] = item
  a = a + 4
end

-- Pass 2: apply.
local reply, o = {}, 1
for i = 1, s.N do o = lb_apply(s, items[i], reply, o) end
return reply
