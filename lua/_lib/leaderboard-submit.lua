-- leaderboard-submit: the submit logic shared by lua/leaderboard/submit.lua (all items or none) and
-- lua/leaderboard/submit-batch.lua (each item on its own); the general call (several boards or items) continues in
-- leaderboard-submit-many. Include after now-ms. Both scripts share the layout:
-- KEYS[1] meta, KEYS[2] seq, then per board a (zset, index) key pair (B = (#KEYS - 2) / 2 boards);
-- ARGV[1..3] update, order, toleranceMs; then per board either `-p` (a board of period p that holds every time and
-- never expires: the all-time board, one argument) or `p, startMs, endMs, expireAtMs` (p = 1..P, four arguments);
-- then per item member, score, meta, at (N = the arguments left / 4; P = the largest p).
-- Written for the cost inside Redis, where every table, closure, upvalue and number conversion counts: items on
-- one board (the usual call, and the usual micro-batch) take lb_single, which builds no table; scores go to Redis as
-- the text they came in (a sum as %.17g), and an increment reads the member's entry once.
-- Error texts hold the error code and numbers only, never a key: the client reads the error's kind from its text,
-- and a leaderboard named "LOADING ..." or "... LB_OVERFLOW" would otherwise read as another error.

-- Applies one checked score (text as sent, score its number) to board b. s: the general call's state (arrival
-- numbers reserved, items left), nil for a single item. prefix: the item's arrival prefix if an earlier board drew
-- it, else nil. pre: nil (not read yet), false (read: not on the board) or the member's prefix as the check read it,
-- oldText its score then. Returns the item's prefix, the score text now on the board, the 1-based rank, 1 if the
-- score changed else 0; or false and the error text of an increment leaving +-(2^53 - 1), before any write.
local function lb_put(s, b, member, text, score, prefix, pre, oldText, expireAt)
  local zset, index = KEYS[1 + 2 * b], KEYS[2 + 2 * b]
  local oldEntry
  if pre == nil then
    pre = redis.call('HGET', index, member)
    if pre then
      oldEntry = pre .. ':' .. member
      oldText = redis.call('ZSCORE', zset, oldEntry)
    end
  elseif pre then
    oldEntry = pre .. ':' .. member
  end
  local update, desc = ARGV[1], ARGV[2] == 'desc'
  local newText = text -- nil: the member keeps its entry
  if update == 'increment' then
    local old = oldText and oldText + 0 or 0
    local new = old + score
    -- A double sum of integers that passes 2^53 may round back onto 2^53 itself, so 2^53 is out too.
    if new >= 9007199254740992 or new <= -9007199254740992 then
      return false, 'LB_OVERFLOW ' .. string.format('%.17g + %.17g', old, score)
        .. ' leaves the safe integer range +-(2^53 - 1)'
    end
    if oldText then
      if new == old then newText = nil else newText = string.format('%.17g', new) end
    end
  elseif oldText then
    local old = oldText + 0
    if update == 'replace' then
      if score == old then newText = nil end
    elseif desc then
      if not (score > old) then newText = nil end
    elseif not (score < old) then
      newText = nil
    end
  end
  local entry, updated
  if newText == nil then
    entry, newText, updated = oldEntry, oldText, 0
  else
    if prefix == nil then
      local seq
      if s == nil then
        seq = redis.call('INCRBY', KEYS[2], '1') -- text: a number argument costs a %.17g format
      else
        -- Arrival numbers come in blocks: one INCRBY reserves a number for every item still to apply in this
        -- script, so a batch of N updates pays one call, not N. Unused numbers leave gaps, which order nothing.
        if s.seqNext > s.seqLast then
          local left = s.N - s.applied
          s.seqLast = redis.call('INCRBY', KEYS[2], left)
          s.seqNext = s.seqLast - left + 1
        end
        seq = s.seqNext
        s.seqNext = seq + 1
      end
      -- desc boards are read with ZREVRANGE, which also reverses the lexical order of equal scores:
      -- there the earliest arrival must carry the largest prefix.
      if desc then seq = 9007199254740992 - seq end
      prefix = string.format('%016.0f', seq)
    end
    -- The new entry goes in before the old one leaves: a ZREM that emptied the set would delete the key, and the
    -- ZADD would recreate it without the period board's expiry.
    entry = prefix .. ':' .. member
    redis.call('ZADD', zset, newText, entry)
    -- The same entry when the arrival counter restarted (deleted or evicted) and drew the old number again: the ZADD
    -- updated it in place, a ZREM would take the member off the board.
    if oldText and entry ~= oldEntry then redis.call('ZREM', zset, oldEntry) end
    redis.call('HSET', index, member, prefix)
    -- A period board's keys expire graceMs after its end. The write that put a member on the board set that
    -- expiry; a member already on it finds it set (the same time: the board's end plus graceMs).
    if not oldText and expireAt ~= nil and expireAt ~= 0 then
      redis.call('PEXPIREAT', zset, expireAt)
      redis.call('PEXPIREAT', index, expireAt)
    end
    updated = 1
  end
  return prefix, newText, redis.call(desc and 'ZREVRANK' or 'ZRANK', zset, entry) + 1, updated
end

-- The ARGV index of the only item when the call is one item on one board (KEYS: meta, seq, zset, index), else nil.
local function lb_single_at()
  if #KEYS ~= 4 then return nil end
  local a = ARGV[4] == '-1' and 5 or 8
  if #ARGV == a + 3 then return a end
  return nil
end

local lb_time -- Redis server time (ms), read once per script and only when needed (see lb_now)

-- The all-time board holds every time and never expires, so a submit on it alone reads no TIME.
local function lb_now()
  if lb_time == nil then lb_time = now_ms() end
  return lb_time
end

-- One item on one board, its arguments from ARGV[a] on: checks, then applies (the all-time board reads no TIME).
-- s: nil for a call of one item, else the batch's state (arrival numbers reserved, items done; see lb_put).
-- Returns the score text, rank, updated 0/1; or nil and the error text, having changed nothing.
local function lb_single(a, s)
  local member, text, meta, at = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local ref, now, expireAt
  if at ~= '' then
    ref, now = at + 0, lb_now()
    if ref > now + ARGV[3] then return nil, 'LB_PERIOD_CLOSED at=' .. at .. ' lies after server time ' .. now end
  end
  if ARGV[4] ~= '-1' then -- a period board: p, startMs, endMs, expireAtMs
    if now == nil then now = lb_now() end
    if ref == nil then ref = now end
    if not (ARGV[5] + 0 <= ref and ref < ARGV[6] + 0) then
      return nil, 'LB_CLOCK_SKEW no board of period 1 holds time ' .. ref
    end
    expireAt = ARGV[7] + 0
    if expireAt ~= 0 and expireAt <= now then
      return nil, 'LB_PERIOD_CLOSED the board of period 1 ending at ' .. ARGV[6] .. ' expired at ' .. expireAt
    end
  end
  local prefix, newText, rank, updated = lb_put(s, 1, member, text, text + 0, nil, nil, nil, expireAt)
  if prefix == false then return nil, newText end
  if meta ~= '' then redis.call('HSET', KEYS[1], member, meta) end
  return newText, rank, updated
end

-- The ARGV index of the first item when the call has one board per period (boards 1..B of periods 1..B, in order:
-- no period has two candidate boards, the usual call), else nil.
local function lb_multi_at()
  local a = 4
  for b = 1, (#KEYS - 2) / 2 do
    local p = ARGV[a] + 0
    if p < 0 then
      p, a = -p, a + 1
    else
      a = a + 4
    end
    if p ~= b then return nil end
  end
  return a
end

-- One item on B boards, one per period (see lb_multi_at), its arguments from ARGV[a] on: checks every board (in the
-- general path's order), then applies on each in period order with one arrival prefix; no table but out, which gets
-- per period score, rank, updated 0/1, board index from index o on, and for an increment one table of what the
-- checks read. s as for lb_single. Returns true; or nil and the error text, having changed nothing.
local function lb_multi(a, s, B, out, o)
  local member, text, meta, at = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local score, ref, read = text + 0, nil, nil
  if at ~= '' then
    ref = at + 0
    if ref > lb_now() + ARGV[3] then return nil, 'LB_PERIOD_CLOSED at=' .. at .. ' lies after server time ' .. lb_time end
  end
  if ARGV[1] == 'increment' then read = {} end
  local j = 4
  for b = 1, B do
    if ARGV[j] + 0 < 0 then
      j = j + 1
    else
      if ref == nil then ref = lb_now() end
      if not (ARGV[j + 1] + 0 <= ref and ref < ARGV[j + 2] + 0) then
        return nil, 'LB_CLOCK_SKEW no board of period ' .. b .. ' holds time ' .. ref
      end
      local e = ARGV[j + 3] + 0
      if e ~= 0 and e <= lb_now() then
        return nil, 'LB_PERIOD_CLOSED the board of period ' .. b .. ' ending at ' .. ARGV[j + 2] .. ' expired at ' .. e
      end
      j = j + 4
    end
    if read then
      -- An increment reads the member's entry on each board once, here, and keeps it for lb_put.
      local pre = redis.call('HGET', KEYS[2 + 2 * b], member)
      local old = pre and redis.call('ZSCORE', KEYS[1 + 2 * b], pre .. ':' .. member)
      local base = old and old + 0 or 0
      local total = base + score
      -- A double sum of integers that passes 2^53 may round back onto 2^53 itself, so 2^53 is out too.
      if total >= 9007199254740992 or total <= -9007199254740992 then
        return nil, 'LB_OVERFLOW ' .. string.format('%.17g + %.17g', base, score)
          .. ' leaves the safe integer range +-(2^53 - 1)'
      end
      read[2 * b - 1], read[2 * b] = pre or false, old
    end
  end
  local prefix
  j = 4
  for b = 1, B do
    local e
    if ARGV[j] + 0 < 0 then
      j = j + 1
    else
      e, j = ARGV[j + 3] + 0, j + 4
    end
    prefix, out[o], out[o + 1], out[o + 2] =
      lb_put(s, b, member, text, score, prefix, read and read[2 * b - 1], read and read[2 * b], e)
    if prefix == false then error(out[o]) end -- not reached: the checks saw the same sums
    out[o + 3] = b
    o = o + 4
  end
  if meta ~= '' then redis.call('HSET', KEYS[1], member, meta) end
  return true
end
