-- Leaderboard submit: applies the update policy of one or more submissions to every configured period board at once.
-- Each board is a sorted set (the real score as ZSET score; element "<16-digit arrival prefix>:<member>", so equal
-- scores order by arrival) plus an index hash member -> arrival prefix. Boards come after the two fixed keys as
-- (zset, index) key pairs: KEYS[3], KEYS[4] is board 1, KEYS[5], KEYS[6] board 2, and so on.
-- After the fixed ARGV come, per board: periodIndex (1..P), startMs, endMs, expireAtMs (0 = never expires);
-- then per item: member, score, meta ('' = keep the stored metadata), at ('' = Redis server time).
-- For each item and period the script uses the board of that period whose [startMs, endMs) holds the item's time.
-- Every check (clock skew, closed period, increment leaving +-(2^53 - 1)) runs before the first write: an error changes nothing.
-- KEYS[1] meta (hash): member -> metadata JSON, shared by every board of the leaderboard
-- KEYS[2] seq (integer): arrival counter of the leaderboard (numbers reserved in one INCRBY per script; gaps order nothing)
-- ARGV[1] update (string): best | replace | increment
-- ARGV[2] order (string): desc | asc
-- ARGV[3] periods (count): number of configured periods P
-- ARGV[4] boards (count): number of boards B passed in KEYS after the two fixed keys
-- ARGV[5] items (count): number of submissions N
-- ARGV[6] toleranceMs (ms): an explicit `at` may lie at most this far after server time
-- Reply: Array<Array<string | number>>
-- (per item, per period: score, rank, updated 0/1, index of the board used)
--@include now-ms
--@include leaderboard-submit
local s, a = lb_state()

-- Pass 1: pick the boards of every item and check everything before writing anything.
local items, overlay = {}, {}
for i = 1, s.N do
  local item, err = lb_check(s, ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], overlay)
  if item == nil then return redis.error_reply(err) end
  items[i] = item
  a = a + 4
end

-- Pass 2: apply.
local reply = {}
for i = 1, s.N do reply[i] = lb_apply(s, items[i]) end
return reply
