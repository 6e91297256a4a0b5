-- Append: adds one event to the log unless its idempotency key was already used within its window, then trims.
-- A duplicate appends nothing and returns the first append's id (duplicate 1), or 2 when the key was first used with
-- another payload (its digest differs). Every entry gets the next sequence number
-- (field s); with chain=1 also the previous entry's hash (p) and its own (h = sha1(p \n id \n s \n d)).
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): seq (last sequence number), last (last id), head (last hash), anchor (first id after a trim)
-- KEYS[3] dedupe (string): the idempotency key's record holding the first append's id (unused when window is 0)
-- ARGV[1] payload (string): the encoded event
-- ARGV[2] windowMs (ms): how long the idempotency key is remembered; 0 = no idempotency key
-- ARGV[3] digest (string): the payload's digest, stored with the idempotency key ("" = none)
-- ARGV[4] mode (string): 0 | 1 (1 = hash-chain the entry); with retention "<0|1> <maxLen> <maxAgeMs>": maxLen an
-- approximate length cap (XTRIM MAXLEN ~), maxAgeMs trims entries older than that (server time; XTRIM MINID ~), 0 = none
-- Reply: string | [id: string, duplicate: number]
-- (appended: the new id, a string, no table; a duplicate: the first append's id and 1, or 2 for another payload)
local stream, meta, window, mode = KEYS[1], KEYS[2], ARGV[2], ARGV[4]
-- The usual calls take their own straight-line paths, each building only the functions it needs (every function is a
-- closure made anew on each call that reaches it): the same commands, in the same order, as the general code at the
-- end (el_add of lua/_lib/eventlog-append.lua, then el_retain) runs for them; a change to one is a change to both.
-- 1. Not chained: a plain append, with or without idempotency key, with or without retention.
if mode == '0' or (mode ~= '1' and string.sub(mode, 1, 1) ~= '1') then
  local maxLen, maxAge, retain = 0, 0, nil
  if #mode > 1 then
--@include now-ms
--@include eventlog-retain
    maxLen, maxAge = el_retention(string.sub(mode, 3))
    retain = el_retain
  end
  local seq = redis.call('HGET', meta, 'seq')
  if window ~= '0' then
--@include eventlog-dedupe
    local first, dup = el_dedupe(KEYS[3], ARGV[3])
    if first then return { first, dup } end
  end
  local seqText = string.format('%d', (seq and seq + 0 or 0) + 1)
  local id = redis.call('XADD', stream, '*', 'd', ARGV[1], 's', seqText)
  local set
  if window ~= '0' then
    -- The entry is in: a failing SET is the reply, once the meta hash records the entry. (A SET's reply is a table:
    -- { ok = 'OK' } or { err = ... }.)
    local digest = ARGV[3]
    set = redis.pcall('SET', KEYS[3], digest == '' and id or id .. ' ' .. digest, 'PX', window)
  end
  redis.call('HSET', meta, 'seq', seqText, 'last', id)
  if maxLen > 0 or maxAge > 0 then retain(stream, meta, maxLen, maxAge, false, nil) end
  if set and set.err then return set end
  return id
end
-- 2. Chained, without idempotency key or retention. An XADD refused (an entry added by something else lies after the
-- last append) writes nothing and goes on to the general code, which handles it.
if mode == '1' and window == '0' then
  local m = redis.call('HMGET', meta, 'seq', 'last', 'head')
  local last, prev = m[2], m[3] or '0000000000000000000000000000000000000000'
  local seqText = string.format('%d', (m[1] and m[1] + 0 or 0) + 1)
  local t = redis.call('TIME')
  local us = t[2] + 0
  local now = t[1] * 1000 + (us - us % 1000) / 1000
  local id
  if last then
    local dash = string.find(last, '-', 1, true)
    local lastMs = string.sub(last, 1, dash - 1) + 0
    if now > lastMs then
      id = string.format('%d-0', now)
    else
      id = string.format('%d-%d', lastMs, string.sub(last, dash + 1) + 1)
    end
  else
    id = string.format('%d-0', now)
  end
  local head = redis.sha1hex(prev .. '\n' .. id .. '\n' .. seqText .. '\n' .. ARGV[1])
  local added = redis.pcall('XADD', stream, id, 'd', ARGV[1], 's', seqText, 'p', prev, 'h', head)
  if type(added) ~= 'table' then
    redis.call('HSET', meta, 'seq', seqText, 'last', id, 'head', head)
    return id
  end
end
-- 3. Every other call, chained: with an idempotency key or retention, or an XADD refused above.
--@include now-ms
--@include eventlog-dedupe
--@include eventlog-append
--@include eventlog-retain
local maxLen, maxAge = 0, 0
if #mode > 1 then maxLen, maxAge = el_retention(string.sub(mode, 3)) end
local m = redis.call('HMGET', meta, 'seq', 'last', 'head')
local res, seq, last, head, now, err, seqText =
  el_add(stream, KEYS[3], ARGV[1], window, ARGV[3], true, m[1] and m[1] + 0 or 0, m[2], m[3], nil)
if type(res) ~= 'string' then return res end
redis.call('HSET', meta, 'seq', seqText, 'last', last, 'head', head)
if maxLen > 0 or maxAge > 0 then el_retain(stream, meta, maxLen, maxAge, true, now) end
if err then return err end
return res
