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

-- Compares two stream ids given as { ms, seq } numbers.
local function el_cmp(ams, aseq, bms, bseq)
  if ams ~= bms then return ams < bms and -1 or 1 end
  if aseq ~= bseq then return aseq < bseq and -1 or 1 end
  return 0
end

local function el_split(id)
  local dash = string.find(id, '-', 1, true)
  if not dash then return nil, nil end
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

-- The idempotency record of a key: "<first id> <payload digest>" (a record without a digest holds the id only).
-- Returns nil when the key is unused, else { first id, 1 (same payload, or no digest to compare) or 2 (conflict) }.
local function el_dedupe(dedupe, digest)
  local rec = redis.call('GET', dedupe)
  if not rec then return nil end
  local sp = string.find(rec, ' ', 1, true)
  if not sp then return { rec, 1 } end
  local first = string.sub(rec, 1, sp - 1)
  if digest ~= '' and string.sub(rec, sp + 1) ~= digest then return { first, 2 } end
  return { first, 1 }
end

local function el_remember(dedupe, id, digest, window)
  if digest == '' then
    redis.call('SET', dedupe, id, 'PX', window)
  else
    redis.call('SET', dedupe, id .. ' ' .. digest, 'PX', window)
  end
end

-- One append: the new entry's id (a string: appended), or { first id, duplicate 1/2 (2: the key was used with another
-- payload) }. Raises (for the batch's pcall) without changing st when a command fails.
local function el_add(st, stream, dedupe, payload, window, digest)
  if window > 0 then
    local dup = el_dedupe(dedupe, digest)
    if dup then return dup end
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
    local added = redis.pcall('XADD', stream, id, 'd', payload, 's', seq, 'p', prev, 'h', hash)
    if type(added) == 'table' and added.err then
      -- An entry added by something else lies after the last append (verify() reports it): go on after it.
      local topMs, topSeq = el_split(redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1][1])
      if now > topMs then id = string.format('%.0f-0', now) else id = string.format('%.0f-%.0f', topMs, topSeq + 1) end
      hash = redis.sha1hex(prev .. '\n' .. id .. '\n' .. seq .. '\n' .. payload)
      redis.call('XADD', stream, id, 'd', payload, 's', seq, 'p', prev, 'h', hash)
    end
    st.head = hash
  else
    id = redis.call('XADD', stream, '*', 'd', payload, 's', seq)
  end
  st.seq, st.last, st.added = seq, id, st.added + 1
  if window > 0 then el_remember(dedupe, id, digest, window) end
  return id
end

-- One append to a keyed chain (HMAC computed by the client, which holds the key): appended only when the client
-- built it on the current state: prev is the recorded head (the genesis hash for the first entry), seq the next
-- sequence number, and id comes after the last id, at most 10 s before max(server time, last id's ms) and not after
-- it. Otherwise nothing is written and the reply carries the state to build on: { '', 3, now, last, head, seq }.
-- Success { id, 0, now }, duplicate { first id, 1 or 2, now }. The entry gets k = keyId besides d, s, p, h.
local function el_add_keyed(st, stream, dedupe, payload, window, digest, prev, seq, id, keyId, mac)
  local now = el_now(st)
  if window > 0 then
    local dup = el_dedupe(dedupe, digest)
    if dup then return { dup[1], dup[2], now } end
  end
  local head = st.head or '0000000000000000000000000000000000000000000000000000000000000000'
  local lastMs, lastSeq = -1, 0
  if st.last then lastMs, lastSeq = el_split(st.last) end
  local idMs, idSeq = el_split(id)
  local top = math.max(now, lastMs)
  if prev ~= head or tonumber(seq) ~= st.seq + 1 or idMs == nil or el_cmp(idMs, idSeq, lastMs, lastSeq) <= 0
    or idMs > top or idMs < top - 10000 then
    return { '', 3, now, st.last or '', st.head or '', st.seq }
  end
  local added = redis.pcall('XADD', stream, id, 'd', payload, 's', st.seq + 1, 'p', prev, 'h', mac, 'k', keyId)
  if type(added) == 'table' and added.err then
    -- An entry added by something else lies after the last append (verify() reports it): the client picks an id
    -- after it.
    return { '', 3, now, redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1][1], st.head or '', st.seq }
  end
  st.seq, st.last, st.head, st.added = st.seq + 1, id, mac, st.added + 1
  if window > 0 then el_remember(dedupe, id, digest, window) end
  return { id, 0, now }
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
