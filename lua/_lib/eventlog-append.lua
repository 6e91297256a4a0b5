-- eventlog-append: appending, shared by lua/eventlog/append.lua (one call), lua/eventlog/append-batch.lua (N calls
-- in one script) and lua/eventlog/append-keyed.lua. Include after now-ms and eventlog-dedupe. The log's meta hash is
-- read once, every call appends with el_add (its own reply or error), then the meta hash is written once and
-- retention applied (el_retain, lua/_lib/eventlog-retain.lua): a batch of N plain appends costs N XADDs plus three
-- commands. See append.lua's header for the keys, the arguments and the entry fields. Written for the cost inside
-- Redis, where every table, closure and number conversion counts: the state (seq, last, head, now) goes in and out of
-- el_add as values, no table is built.

-- The stream's last id: the largest id ever added to it (XINFO STREAM last-generated-id), which a new entry's id
-- must exceed, also after that entry was deleted (XDEL) or trimmed. Only when an XADD after the last append failed.
local function el_last_id(stream)
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info - 1, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
end

-- One append after the state seq (number), last (id or false), head (hash or false), now (ms or nil: read when
-- needed). window: the idempotency window as sent ('0' = no idempotency key). Returns the new entry's id (a string:
-- appended) and the new seq, last, head, now, the error reply of a failed SET of the idempotency record (or nil)
-- and the new seq as text;
-- or for a used key { first id, duplicate 1/2 } and the state unchanged. Raises (for the batch's pcall) without a
-- write when a command before the XADD's success fails.
local function el_add(stream, dedupe, payload, window, digest, chain, seq, last, head, now)
  if window ~= '0' then
    local first, dup = el_dedupe(dedupe, digest)
    if first then return { first, dup }, seq, last, head, now end
  end
  seq = seq + 1
  -- The sequence number as text, once: a number passed to redis.call is formatted with %.17g on every call, and
  -- `..` formats with %.14g; string.format('%d') costs a third of either.
  local seqText = string.format('%d', seq)
  local id
  if chain then
    -- The hash covers the id, so the script picks the id itself: server time, or last id + 1 within one ms.
    -- (lua/eventlog/append.lua repeats this up to the XADD for a chained call without idempotency key or retention.)
    if now == nil then now = now_ms() end
    local lastMs, dash = -1, nil
    if last then
      dash = string.find(last, '-', 1, true)
      lastMs = string.sub(last, 1, dash - 1) + 0
    end
    if now > lastMs then
      id = string.format('%d-0', now)
    else
      id = string.format('%d-%d', lastMs, string.sub(last, dash + 1) + 1)
    end
    local prev = head or '0000000000000000000000000000000000000000'
    head = redis.sha1hex(prev .. '\n' .. id .. '\n' .. seqText .. '\n' .. payload)
    local added = redis.pcall('XADD', stream, id, 'd', payload, 's', seqText, 'p', prev, 'h', head)
    if type(added) == 'table' and added.err then
      -- Any other refusal (a full Redis: OOM, a wrong type...) is the call's error, raised before any write.
      if not string.find(added.err, 'equal or smaller than the target stream top item', 1, true) then error(added) end
      -- An entry added by something else lies after the last append (verify() reports it), or did (deleted since:
      -- Redis still requires an id after it): go on after the stream's last id.
      local top = el_last_id(stream)
      dash = string.find(top, '-', 1, true)
      local topMs = string.sub(top, 1, dash - 1) + 0
      if now > topMs then
        id = string.format('%d-0', now)
      else
        id = string.format('%d-%d', topMs, string.sub(top, dash + 1) + 1)
      end
      head = redis.sha1hex(prev .. '\n' .. id .. '\n' .. seqText .. '\n' .. payload)
      redis.call('XADD', stream, id, 'd', payload, 's', seqText, 'p', prev, 'h', head)
    end
  else
    -- (lua/eventlog/append.lua repeats this for its usual call, before it builds any function.)
    id = redis.call('XADD', stream, '*', 'd', payload, 's', seqText)
  end
  local err
  if window ~= '0' then
    -- The entry is in: a failing SET is reported (err) with the new state, which the meta hash must record.
    local set = redis.pcall('SET', dedupe, digest == '' and id or id .. ' ' .. digest, 'PX', window)
    if type(set) == 'table' and set.err then err = set end
  end
  return id, seq, id, head, now, err, seqText
end
