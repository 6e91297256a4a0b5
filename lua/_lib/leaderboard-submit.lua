-- leaderboard-submit: one item on one board for lua/leaderboard/submit.lua and submit-batch.lua, after now-ms and
-- leaderboard-put (same layout).

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
