-- leaderboard-submit: the submit logic shared by lua/leaderboard/submit.lua (all items or none) and
-- lua/leaderboard/submit-batch.lua (each item on its own). Include after now-ms. Both scripts share the layout:
-- KEYS[1] meta, KEYS[2] seq, then per board a (zset, index) key pair; ARGV[1..6] update, order, P, B, N,
-- toleranceMs, then per board periodIndex, startMs, endMs, expireAtMs, then per item member, score, meta, at.
local LB_LIMIT = 9007199254740992 -- 2^53

local function lb_fmt(x) return string.format('%.17g', x) end

-- The call's settings and boards; returns them and the ARGV index of the first item.
local function lb_state()
  local s = {
    update = ARGV[1], desc = ARGV[2] == 'desc',
    P = tonumber(ARGV[3]), B = tonumber(ARGV[4]), N = tonumber(ARGV[5]),
    tolerance = tonumber(ARGV[6]), now = nil, boards = {}, applied = 0, seqNext = nil, seqLast = nil,
  }
  local a = 7
  for b = 1, s.B do
    s.boards[b] = {
      zset = KEYS[1 + 2 * b], index = KEYS[2 + 2 * b], period = tonumber(ARGV[a]),
      start = tonumber(ARGV[a + 1]), stop = tonumber(ARGV[a + 2]), expireAt = tonumber(ARGV[a + 3]),
    }
    a = a + 4
  end
  return s, a
end

-- Redis server time, read once per script and only when needed: the all-time board (bounds +-2^53) holds every
-- time and never expires, so a submit on it alone reads no TIME.
local function lb_now(s)
  if s.now == nil then s.now = now_ms() end
  return s.now
end

-- Current (prefix, score) of a member on a board, or nil.
local function lb_current(board, member)
  local prefix = redis.call('HGET', board.index, member)
  if not prefix then return nil end
  local score = redis.call('ZSCORE', board.zset, prefix .. ':' .. member)
  return prefix, tonumber(score)
end

-- Pass 1 of one item: picks its board of every period and checks everything before anything is written.
-- Returns the item, or nil and the error text. overlay holds the sums that earlier items of the same all-or-none
-- call will have produced on a board (increment), keyed by board index and member.
local function lb_check(s, member, score, meta, at, overlay)
  local boards = s.boards
  local ref
  if at ~= '' then
    ref = tonumber(at)
    if ref > lb_now(s) + s.tolerance then
      return nil, 'LB_PERIOD_CLOSED at=' .. at .. ' lies after server time ' .. s.now
    end
  end
  local chosen = {}
  for b = 1, s.B do
    local board = boards[b]
    if chosen[board.period] == nil then
      if board.start <= -LB_LIMIT and board.stop >= LB_LIMIT then
        chosen[board.period] = b
      else
        if ref == nil then ref = lb_now(s) end
        if board.start <= ref and ref < board.stop then chosen[board.period] = b end
      end
    end
  end
  for p = 1, s.P do
    local b = chosen[p]
    if b == nil then
      return nil, 'LB_CLOCK_SKEW no board of period ' .. p .. ' holds time ' .. (ref or lb_now(s))
    end
    if boards[b].expireAt ~= 0 and boards[b].expireAt <= lb_now(s) then
      return nil, 'LB_PERIOD_CLOSED the board ' .. boards[b].zset .. ' expired at ' .. boards[b].expireAt
    end
    if s.update == 'increment' then
      local slot = b .. '\0' .. member
      local base = overlay[slot]
      if base == nil then
        local _, cur = lb_current(boards[b], member)
        base = cur or 0
      end
      local total = base + score
      -- A double sum of integers that passes 2^53 may round back onto 2^53 itself, so 2^53 is out too.
      if total >= LB_LIMIT or total <= -LB_LIMIT then
        return nil, 'LB_OVERFLOW ' .. lb_fmt(base) .. ' + ' .. lb_fmt(score) .. ' leaves the safe integer range +-(2^53 - 1)'
      end
      overlay[slot] = total
    end
  end
  return { member = member, score = score, meta = meta, chosen = chosen }
end

-- Pass 2 of one checked item: applies it; returns per period score, rank, updated 0/1, index of the board used.
local function lb_apply(s, item)
  local update, desc = s.update, s.desc
  local member, score = item.member, item.score
  local out, prefix = {}, nil
  for p = 1, s.P do
    local board = s.boards[item.chosen[p]]
    local oldPrefix, old = lb_current(board, member)
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
      out[at + 1] = lb_fmt(old)
      out[at + 3] = 0
    else
      if prefix == nil then
        -- Arrival numbers come in blocks: one INCRBY reserves a number for every item still to apply in this
        -- script, so a batch of N updates pays one call, not N. Unused numbers leave gaps, which order nothing.
        if s.seqNext == nil or s.seqNext > s.seqLast then
          s.seqLast = redis.call('INCRBY', KEYS[2], s.N - s.applied)
          s.seqNext = s.seqLast - (s.N - s.applied) + 1
        end
        local seq = s.seqNext
        s.seqNext = seq + 1
        -- desc boards are read with ZREVRANGE, which also reverses the lexical order of equal scores:
        -- there the earliest arrival must carry the largest prefix.
        if desc then seq = LB_LIMIT - seq end
        prefix = string.format('%016.0f', seq)
      end
      if oldPrefix then redis.call('ZREM', board.zset, oldPrefix .. ':' .. member) end
      entry = prefix .. ':' .. member
      redis.call('ZADD', board.zset, new, entry) -- a number goes to Redis as %.17g, as lb_fmt writes it
      redis.call('HSET', board.index, member, prefix)
      if board.expireAt ~= 0 then
        redis.call('PEXPIREAT', board.zset, board.expireAt)
        redis.call('PEXPIREAT', board.index, board.expireAt)
      end
      out[at + 1] = lb_fmt(new)
      out[at + 3] = 1
    end
    local rank
    if desc then rank = redis.call('ZREVRANK', board.zset, entry) else rank = redis.call('ZRANK', board.zset, entry) end
    out[at + 2] = rank + 1
  end
  if item.meta ~= '' then redis.call('HSET', KEYS[1], member, item.meta) end
  s.applied = s.applied + 1
  return out
end
