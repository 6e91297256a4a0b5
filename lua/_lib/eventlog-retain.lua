-- eventlog-retain: retention of a log (maxLen, maxAgeMs), for lua/eventlog/append.lua, append-batch.lua and
-- append-keyed.lua. Include after now-ms. A plain append (append.lua) includes it inside the block of a call that has
-- retention, so that a call without retention builds neither function.

-- The retention settings as sent: '' = none, else "<maxLen> <maxAgeMs>" (0 = none). Returns maxLen, maxAgeMs.
local function el_retention(text)
  if text == '' then return 0, 0 end
  local sp = string.find(text, ' ', 1, true)
  return string.sub(text, 1, sp - 1) + 0, string.sub(text, sp + 1) + 0
end

-- After the appends (at least one): applies retention once; when it trimmed a chained log, records the first kept
-- entry (anchor), so verify() can tell trimming from deletion.
local function el_retain(stream, meta, maxLen, maxAge, chain, now)
  local trimmed = 0
  if maxLen > 0 then trimmed = trimmed + redis.call('XTRIM', stream, 'MAXLEN', '~', maxLen) end
  if maxAge > 0 then
    if now == nil then now = now_ms() end
    trimmed = trimmed + redis.call('XTRIM', stream, 'MINID', '~', string.format('%.0f', now - maxAge))
  end
  if trimmed > 0 and chain then
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if first then redis.call('HSET', meta, 'anchor', first[1]) end
  end
end
