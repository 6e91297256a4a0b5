-- leaderboard-put: lb_put, which applies one score to one board, for lua/leaderboard/submit.lua (all items or none)
-- and lua/leaderboard/submit-batch.lua (each item on its own). The submit logic continues in leaderboard-submit (one
-- item on one board, after now-ms), leaderboard-submit-multi (one item on one board per period) and
-- leaderboard-submit-many (the general call), each included only past the shorter calls' early return, so that a
-- call which does not need them creates none of their functions. Both scripts share the layout (a call on the
-- all-time board alone without metadata or time may be shorter: see submit.lua and submit-batch.lua):
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
      -- there the earliest arrival must carry the largest prefix. '%016d' writes the same 16 digits as '%016.0f' for
      -- these whole numbers (0 to 2^53) at a quarter of the cost: an integer conversion, no float formatting.
      if desc then seq = 9007199254740992 - seq end
      prefix = string.format('%016d', seq)
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
