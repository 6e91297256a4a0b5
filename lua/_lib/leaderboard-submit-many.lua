-- leaderboard-submit-many: the general submit call (several boards or items) of lua/leaderboard/submit.lua and
-- lua/leaderboard/submit-batch.lua, after leaderboard-submit (same layout), which applies each board's score.
-- The call's state and boards (arrays by board number); returns them and the ARGV index of the first item.
local function lb_state()
  local B = (#KEYS - 2) / 2
  local period, start, stop, expireAt = {}, {}, {}, {}
  local P, a = 0, 4
  for b = 1, B do
    local p = ARGV[a] + 0
    if p < 0 then
      p = -p
      a = a + 1
    else
      start[b], stop[b], expireAt[b] = ARGV[a + 1] + 0, ARGV[a + 2] + 0, ARGV[a + 3] + 0
      a = a + 4
    end
    period[b] = p
    if p > P then P = p end
  end
  return {
    increment = ARGV[1] == 'increment', P = P, B = B, N = (#ARGV - a + 1) / 4, applied = 0, seqNext = 1, seqLast = 0,
    period = period, start = start, stop = stop, expireAt = expireAt,
  }, a
end

-- Pass 1 of one item: picks its board of every period and checks everything before anything is written.
-- Returns the item, or nil and the error text. overlay holds, per board, the sums that earlier items of the same
-- all-or-none call will have produced (increment). An increment reads the member's entry here; the first item of
-- the call on that board and member keeps what it read (pre, old) for pass 2, which nothing before it changes.
local function lb_check(s, member, text, meta, at, overlay)
  local ref
  if at ~= '' then
    ref = at + 0
    if ref > lb_now() + ARGV[3] then
      return nil, 'LB_PERIOD_CLOSED at=' .. at .. ' lies after server time ' .. lb_time
    end
  end
  local period, start, expireAt = s.period, s.start, s.expireAt
  local chosen = {}
  for b = 1, s.B do
    local p = period[b]
    if chosen[p] == nil then
      local from = start[b]
      if from == nil then
        chosen[p] = b
      else
        if ref == nil then ref = lb_now() end
        if from <= ref and ref < s.stop[b] then chosen[p] = b end
      end
    end
  end
  local score = text + 0
  local item = { member = member, text = text, score = score, meta = meta, chosen = chosen }
  for p = 1, s.P do
    local b = chosen[p]
    if b == nil then
      return nil, 'LB_CLOCK_SKEW no board of period ' .. p .. ' holds time ' .. (ref or lb_now())
    end
    local e = expireAt[b]
    if e ~= nil and e ~= 0 and e <= lb_now() then
      return nil, 'LB_PERIOD_CLOSED the board of period ' .. p .. ' ending at ' .. s.stop[b] .. ' expired at ' .. e
    end
    if s.increment then
      local sums = overlay[b]
      if sums == nil then
        sums = {}
        overlay[b] = sums
      end
      local base = sums[member]
      if base == nil then
        local prefix = redis.call('HGET', KEYS[2 + 2 * b], member)
        local old = prefix and redis.call('ZSCORE', KEYS[1 + 2 * b], prefix .. ':' .. member)
        if item.pre == nil then item.pre, item.old = {}, {} end
        item.pre[p], item.old[p] = prefix, old
        base = old and old + 0 or 0
      end
      local total = base + score
      -- A double sum of integers that passes 2^53 may round back onto 2^53 itself, so 2^53 is out too.
      if total >= 9007199254740992 or total <= -9007199254740992 then
        return nil, 'LB_OVERFLOW ' .. string.format('%.17g + %.17g', base, score)
          .. ' leaves the safe integer range +-(2^53 - 1)'
      end
      sums[member] = total
    end
  end
  return item
end

-- Pass 2 of one checked item: applies it; writes per period score, rank, updated 0/1, index of the board used into
-- out from index o on, and returns the next free index.
local function lb_apply(s, item, out, o)
  local member, text, score, chosen = item.member, item.text, item.score, item.chosen
  local pre, old = item.pre, item.old
  local prefix
  for p = 1, s.P do
    local b = chosen[p]
    prefix, out[o], out[o + 1], out[o + 2] =
      lb_put(s, b, member, text, score, prefix, pre and pre[p], old and old[p], s.expireAt[b])
    if prefix == false then error(out[o]) end -- not reached: lb_check saw the same sums
    out[o + 3] = b
    o = o + 4
  end
  if item.meta ~= '' then redis.call('HSET', KEYS[1], member, item.meta) end
  s.applied = s.applied + 1
  return o
end
