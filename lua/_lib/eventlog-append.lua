-- eventlog-append: appending, shared by lua/eventlog/append.lua (one call) and lua/eventlog/append-batch.lua (N calls
-- in one script). Include after now-ms. The log's meta hash is read once (el_open), every call appends with el_add
-- (its own reply or error), and el_close writes the meta hash once and trims: a batch of N plain appends costs N
-- XADDs plus three commands. See append.lua's header for the keys, the arguments and the entry fields.

-- Reads the meta hash: the state el_add continues from. Server time is read lazily (only chained logs and age-based
-- retention need it), once per script.
local function el_open(meta, chain)
  local m = redis.call('HMGET', meta, 'seq', 'last', 'head')
  return { seq = tonumber(m[1]) or 0, last = m[2] or nil, head = m[3] or nil, chain = chain, now = nil, added = 0 }
end

local function el_now(st)
  if st.now == nil then st.now = now_ms() end
  return st.now
end

-- One append: { id, duplicate 0/1 }. Raises (for the batch's pcall) without changing st when a command fails.
local function el_add(st, stream, dedupe, payload, window)
  if window > 0 then
    local first = redis.call('GET', dedupe)
    if first then return { first, 1 } end
  end
  local seq = st.seq + 1
  local id
  if st.chain then
    -- The hash covers the id, so the script picks the id itself: server time, or last id + 1 within one ms.
    local now = el_now(st)
    local lastMs, lastSeq = -1, 0
    if st.last then
      local dash = string.find(st.last, '-', 1, true)
      lastMs = tonumber(string.sub(st.last, 1, dash - 1))
      lastSeq = tonumber(string.sub(st.last, dash + 1))
    end
    if now > lastMs then
      id = string.format('%.0f-0', now)
    else
      id = string.format('%.0f-%.0f', lastMs, lastSeq + 1)
    end
    local prev = st.head or '0000000000000000000000000000000000000000'
    local hash = redis.sha1hex(prev .. '\n' .. id .. '\n' .. seq .. '\n' .. payload)
    redis.call('XADD', stream, id, 'd', payload, 's', seq, 'p', prev, 'h', hash)
    st.head = hash
  else
    id = redis.call('XADD', stream, '*', 'd', payload, 's', seq)
  end
  st.seq, st.last, st.added = seq, id, st.added + 1
  if window > 0 then redis.call('SET', dedupe, id, 'PX', window) end
  return { id, 0 }
end

-- After the appends: records seq, last (and head) in the meta hash, then applies retention once.
local function el_close(st, stream, meta, maxLen, maxAge)
  if st.added == 0 then return end
  if st.chain then
    redis.call('HSET', meta, 'seq', st.seq, 'last', st.last, 'head', st.head)
  else
    redis.call('HSET', meta, 'seq', st.seq, 'last', st.last)
  end
  local trimmed = 0
  if maxLen > 0 then trimmed = trimmed + redis.call('XTRIM', stream, 'MAXLEN', '~', maxLen) end
  if maxAge > 0 then
    trimmed = trimmed + redis.call('XTRIM', stream, 'MINID', '~', string.format('%.0f', el_now(st) - maxAge))
  end
  if trimmed > 0 and st.chain then
    -- Retention moved the head: remember the first kept entry, so verify() can tell trimming from deletion.
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if first then redis.call('HSET', meta, 'anchor', first[1]) end
  end
end
