-- Dead letters: a page of one partition's dead jobs, oldest death first, with their last error. A page starts right
-- after the last entry the previous page read, by (time of death, id) as the zset orders them, not at a rank: dead
-- jobs retried, trimmed or dying again between two pages neither hide nor repeat the others.
-- KEYS[1] dead (zset): dead job -> time of death (server ms)
-- KEYS[2] jobs (hash): job fields
-- ARGV[1] afterScore (string): time of death of the last entry read ('' to start at the first)
-- ARGV[2] afterId (string): id of the last entry read ('' to start at the first)
-- ARGV[3] limit (integer): most entries to read
-- Reply: [read: number, lastScore: string, lastId: string, ...job: (string | number)[]]

-- Whether member `a` sorts at or before member `b` among equal scores: byte order, as Redis sorts them (Lua's own
-- string comparison follows the server's locale).
local function bytes_le(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end

local limit = tonumber(ARGV[3])
local page
if ARGV[2] == '' then
  page = redis.call('ZRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
else
  local score, id = ARGV[1], ARGV[2]
  local current = redis.call('ZSCORE', KEYS[1], id)
  if current and tonumber(current) == tonumber(score) then
    local rank = redis.call('ZRANK', KEYS[1], id)
    page = redis.call('ZRANGE', KEYS[1], rank + 1, rank + limit, 'WITHSCORES')
  else
    -- The last entry read left (retried, trimmed) or died again since: start after where it was, past the entries of
    -- its time of death that sort at or before it.
    local skip = 0
    for _, member in ipairs(redis.call('ZRANGE', KEYS[1], score, score, 'BYSCORE')) do
      if not bytes_le(member, id) then break end
      skip = skip + 1
    end
    page = redis.call('ZRANGE', KEYS[1], score, '+inf', 'BYSCORE', 'LIMIT', skip, limit, 'WITHSCORES')
  end
end
local out = { #page / 2, page[#page] or '', page[#page - 1] or '' }
for i = 1, #page, 2 do
  local id = page[i]
  local f = redis.call('HMGET', KEYS[2], 'j:' .. id, 'e:' .. id)
  if f[1] then
    local rec = cmsgpack.unpack(f[1])
    local n = #out
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = id, tonumber(page[i + 1]), rec[2], rec[11], f[2] or ''
  end
end
return out
