-- Dead letters: a page of one partition's dead jobs, oldest death first, with their last error.
-- KEYS[1] dead (zset): dead job -> time of death (server ms)
-- KEYS[2] jobs (hash): job fields
-- ARGV[1] offset (integer): rank of the first job of the page
-- ARGV[2] limit (integer): most jobs in the page
-- Reply: [total: number, ...job: (string | number)[]]
local page = redis.call('ZRANGE', KEYS[1], ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1, 'WITHSCORES')
local out = { redis.call('ZCARD', KEYS[1]) }
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
