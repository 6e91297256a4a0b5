-- leaderboard-submit-multi: one item on one board per period, for lua/leaderboard/submit.lua and submit-batch.lua,
-- after leaderboard-submit (same layout). Included after the one-board path, which then defines neither function.

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
