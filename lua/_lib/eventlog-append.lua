-- eventlog-append: one append, shared by lua/eventlog/append.lua and lua/eventlog/append-batch.lua. Include after
-- now-ms. Returns { id, duplicate 0/1 }; see append.lua's header for the keys, the arguments and the entry fields.
local function el_append(stream, meta, dedupe, payload, window, maxLen, maxAge, chain)
  if window > 0 then
    local first = redis.call('GET', dedupe)
    if first then return { first, 1 } end
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local now = now_ms()
  local id
  if chain then
    -- The hash covers the id, so the script picks the id itself: server time, or last id + 1 within one ms.
    local last = redis.call('HGET', meta, 'last')
    local lastMs, lastSeq = -1, 0
    if last then
      local dash = string.find(last, '-', 1, true)
      lastMs = tonumber(string.sub(last, 1, dash - 1))
      lastSeq = tonumber(string.sub(last, dash + 1))
    end
    if now > lastMs then
      id = string.format('%.0f-0', now)
    else
      id = string.format('%.0f-%.0f', lastMs, lastSeq + 1)
    end
    local prev = redis.call('HGET', meta, 'head') or '0000000000000000000000000000000000000000'
    local hash = redis.sha1hex(prev .. '\n' .. id .. '\n' .. seq .. '\n' .. payload)
    redis.call('XADD', stream, id, 'd', payload, 's', seq, 'p', prev, 'h', hash)
    redis.call('HSET', meta, 'last', id, 'head', hash)
  else
    id = redis.call('XADD', stream, '*', 'd', payload, 's', seq)
    redis.call('HSET', meta, 'last', id)
  end
  if window > 0 then redis.call('SET', dedupe, id, 'PX', window) end
  local trimmed = 0
  if maxLen > 0 then trimmed = trimmed + redis.call('XTRIM', stream, 'MAXLEN', '~', maxLen) end
  if maxAge > 0 then
    trimmed = trimmed + redis.call('XTRIM', stream, 'MINID', '~', string.format('%.0f', now - maxAge))
  end
  if trimmed > 0 and chain then
    -- Retention moved the head: remember the first kept entry, so verify() can tell trimming from deletion.
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if first then redis.call('HSET', meta, 'anchor', first[1]) end
  end
  return { id, 0 }
end
