-- Leaderboard submit batch: N independent submit calls (micro-batching), applied one after another in call order.
-- Each item is checked and applied on its own exactly as lua/leaderboard/submit.lua does for a single item, so an
-- item that fails a check (clock skew, closed period, increment overflow) changes nothing, one that meets a Redis
-- error keeps the writes it made before it (Redis does not roll back), and either way the others
-- still apply. Same KEYS and ARGV layout as submit.lua: the boards are the union of every item's candidate boards.
-- KEYS[1] meta (hash): member -> metadata JSON, shared by every board of the leaderboard
-- KEYS[2] seq (integer): arrival counter of the leaderboard (numbers reserved in one INCRBY per script; gaps order nothing)
-- ARGV[1] update (string): best | replace | increment
-- ARGV[2] order (string): desc | asc
-- ARGV[3] toleranceMs (ms): an explicit `at` may lie at most this far after server time ('' = the short form below)
-- Reply: Array<string | number | null> | Array<[ok: number, result: Array<string | number> | string]>
-- (one board: flat, per item score text, rank, updated 0/1 or nil, error text, 0; one board per period: flat, per
-- item and period score, rank, updated 0/1, board index or nil, error text, zeros; else per item
-- {1, per period: score, rank, updated 0/1, board index} or {0, error text})
--@include leaderboard-put
-- Every item without metadata or time on the all-time board alone: ARGV update, order, '' (no toleranceMs), then per
-- item member, score; the reply as for one board.
if ARGV[3] == '' then
  local n = (#ARGV - 3) / 2
  local s = { N = n, applied = 0, seqNext = 1, seqLast = 0 }
  local reply, a = {}, 4
  for o = 1, 3 * n, 3 do
    local text = ARGV[a + 1]
    local ok, prefix, newText, rank, updated = pcall(lb_put, s, 1, ARGV[a], text, text + 0, nil, nil, nil, nil)
    if not ok then
      reply[o], reply[o + 1], reply[o + 2] = false, tostring(type(prefix) == 'table' and prefix.err or prefix), 0
    elseif prefix == false then
      reply[o], reply[o + 1], reply[o + 2] = false, newText, 0
    else
      reply[o], reply[o + 1], reply[o + 2] = newText, rank, updated
    end
    s.applied = s.applied + 1
    a = a + 2
  end
  return reply
end
--@include now-ms
--@include leaderboard-submit
-- Every item on one board (the usual batch: a leaderboard of one period): no tables but the reply, which is flat,
-- three values per item: score text, rank, updated 0/1; or false (nil in the reply), error text, 0.
if #KEYS == 4 then
  local a = ARGV[4] == '-1' and 5 or 8
  local n = (#ARGV - a + 1) / 4
  local s = { N = n, applied = 0, seqNext = 1, seqLast = 0 }
  local reply = {}
  for o = 1, 3 * n, 3 do
    local ok, text, rank, updated = pcall(lb_single, a, s)
    if not ok then
      reply[o], reply[o + 1], reply[o + 2] = false, tostring(type(text) == 'table' and text.err or text), 0
    elseif text == nil then
      reply[o], reply[o + 1], reply[o + 2] = false, rank, 0
    else
      reply[o], reply[o + 1], reply[o + 2] = text, rank, updated
    end
    s.applied = s.applied + 1
    a = a + 4
  end
  return reply
end
--@include leaderboard-submit-multi
-- One board per period (see lb_multi_at): each item through lb_multi, no tables but the reply, which
-- is flat, 4 values per period and item: score text, rank, updated 0/1, board index; or false (nil in the reply),
-- error text and zeros.
local multi = lb_multi_at()
if multi then
  local B = (#KEYS - 2) / 2
  local w = 4 * B
  local n = (#ARGV - multi + 1) / 4
  local s = { N = n, applied = 0, seqNext = 1, seqLast = 0 }
  local reply, a = {}, multi
  for o = 1, w * n, w do
    local ok, res, err = pcall(lb_multi, a, s, B, reply, o)
    if not (ok and res) then
      reply[o], reply[o + 1] = false, ok and err or tostring(type(res) == 'table' and res.err or res)
      for k = o + 2, o + w - 1 do reply[k] = 0 end
    end
    s.applied = s.applied + 1
    a = a + 4
  end
  return reply
end
--@include leaderboard-submit-many

local s, a = lb_state()

-- One item, checked then applied: {1, its row} or {0, error text}.
local function one(member, score, meta, at)
  local item, err = lb_check(s, member, score, meta, at, {})
  if item == nil then return { 0, err } end
  local row = {}
  lb_apply(s, item, row, 1)
  return { 1, row }
end

local reply = {}
for i = 1, s.N do
  local ok, res = pcall(one, ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
  a = a + 4
  if ok then
    reply[i] = res
  else
    reply[i] = { 0, tostring(type(res) == 'table' and res.err or res) }
  end
end
return reply
