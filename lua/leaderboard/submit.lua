-- Leaderboard submit: applies the update policy of one or more submissions to every configured period board at once.
-- Each board is a sorted set (the real score as ZSET score; element "<16-digit arrival prefix>:<member>", so equal
-- scores order by arrival) plus an index hash member -> arrival prefix. Boards come after the two fixed keys as
-- (zset, index) key pairs: KEYS[3], KEYS[4] is board 1, KEYS[5], KEYS[6] board 2, and so on.
-- After the fixed ARGV come, per board: periodIndex (1..P), startMs, endMs, expireAtMs (0 = never expires);
-- then per item: member, score, meta ('' = keep the stored metadata), at ('' = Redis server time).
-- For each item and period the script uses the board of that period whose [startMs, endMs) holds the item's time.
-- Every check (clock skew, closed period, increment leaving +-(2^53 - 1)) runs before the first write: an error changes nothing.
-- KEYS[1] meta (hash): member -> metadata JSON, shared by every board of the leaderboard
-- KEYS[2] seq (integer): arrival counter of the leaderboard, incremented once per item that changes a board
-- ARGV[1] update (string): best | replace | increment
-- ARGV[2] order (string): desc | asc
-- ARGV[3] periods (count): number of configured periods P
-- ARGV[4] boards (count): number of boards B passed in KEYS after the two fixed keys
-- ARGV[5] items (count): number of submissions N
-- ARGV[6] toleranceMs (ms): an explicit `at` may lie at most this far after server time
-- Reply: Array<Array<string | number>>
-- (per item, per period: score, rank, updated 0/1, index of the board used)
--@include now-ms
local update, desc = ARGV[1], ARGV[2] == 'desc'
local P, B, N = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local tolerance = tonumber(ARGV[6])
local LIMIT = 9007199254740992 -- 2^53
local now = now_ms()

local boards = {}
local a = 7
for b = 1, B do
  boards[b] = {
    zset = KEYS[1 + 2 * b], index = KEYS[2 + 2 * b], period = tonumber(ARGV[a]),
    start = tonumber(ARGV[a + 1]), stop = tonumber(ARGV[a + 2]), expireAt = tonumber(ARGV[a + 3]),
  }
  a = a + 4
end

local function fmt(x) return string.format('%.17g', x) end

-- Current (prefix, score) of a member on a board, or nil.
local function current(board, member)
  local prefix = redis.call('HGET', board.index, member)
  if not prefix then return nil end
  local score = redis.call('ZSCORE', board.zset, prefix .. ':' .. member)
  return prefix, tonumber(score)
end

-- Pass 1: pick the boards of every item and check everything before writing anything.
local items, overlay = {}, {}
for i = 1, N do
  local member, score, meta, at = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
  a = a + 4
  local ref = now
  if at ~= '' then
    ref = tonumber(at)
    if ref > now + tolerance then
      return redis.error_reply('LB_PERIOD_CLOSED at=' .. at .. ' lies after server time ' .. now)
    end
  end
  local chosen = {}
  for b = 1, B do
    local board = boards[b]
    if board.start <= ref and ref < board.stop and chosen[board.period] == nil then chosen[board.period] = b end
  end
  for p = 1, P do
    local b = chosen[p]
    if b == nil then
      return redis.error_reply('LB_CLOCK_SKEW no board of period ' .. p .. ' holds time ' .. ref)
    end
    if boards[b].expireAt ~= 0 and boards[b].expireAt <= now then
      return redis.error_reply('LB_PERIOD_CLOSED the board ' .. boards[b].zset .. ' expired at ' .. boards[b].expireAt)
    end
    if update == 'increment' then
      local slot = b .. '\0' .. member
      local base = overlay[slot]
      if base == nil then
        local _, s = current(boards[b], member)
        base = s or 0
      end
      local total = base + score
      -- A double sum of integers that passes 2^53 may round back onto 2^53 itself, so 2^53 is out too.
      if total >= LIMIT or total <= -LIMIT then
        return redis.error_reply('LB_OVERFLOW ' .. fmt(base) .. ' + ' .. fmt(score) .. ' leaves the safe integer range +-(2^53 - 1)')
      end
      overlay[slot] = total
    end
  end
  items[i] = { member = member, score = score, meta = meta, chosen = chosen }
end

-- Pass 2: apply.
local reply = {}
for i = 1, N do
  local item = items[i]
  local member, score = item.member, item.score
  local out, prefix = {}, nil
  for p = 1, P do
    local board = boards[item.chosen[p]]
    local oldPrefix, old = current(board, member)
    local new
    if old == nil or update == 'replace' then
      new = score
    elseif update == 'increment' then
      new = old + score
    elseif (desc and score > old) or (not desc and score < old) then
      new = score
    else
      new = old
    end
    local entry
    local at = 4 * (p - 1)
    out[at + 4] = item.chosen[p]
    if old ~= nil and new == old then
      entry = oldPrefix .. ':' .. member
      out[at + 1] = fmt(old)
      out[at + 3] = 0
    else
      if prefix == nil then
        local seq = redis.call('INCR', KEYS[2])
        -- desc boards are read with ZREVRANGE, which also reverses the lexical order of equal scores:
        -- there the earliest arrival must carry the largest prefix.
        if desc then seq = LIMIT - seq end
        prefix = string.format('%016.0f', seq)
      end
      if oldPrefix then redis.call('ZREM', board.zset, oldPrefix .. ':' .. member) end
      entry = prefix .. ':' .. member
      redis.call('ZADD', board.zset, fmt(new), entry)
      redis.call('HSET', board.index, member, prefix)
      if board.expireAt ~= 0 then
        redis.call('PEXPIREAT', board.zset, board.expireAt)
        redis.call('PEXPIREAT', board.index, board.expireAt)
      end
      out[at + 1] = fmt(new)
      out[at + 3] = 1
    end
    local rank
    if desc then rank = redis.call('ZREVRANK', board.zset, entry) else rank = redis.call('ZRANK', board.zset, entry) end
    out[at + 2] = rank + 1
  end
  if item.meta ~= '' then redis.call('HSET', KEYS[1], member, item.meta) end
  reply[i] = out
end
return reply
