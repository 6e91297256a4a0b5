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
local stream, meta, mode = KEYS[1], KEYS[2], ARGV[4]
-- The usual call, a plain append without idempotency key, returns before the functions of the other calls are built
-- (each is a closure made on every call that reaches it), and with retention builds only those of retention: the same
-- commands as el_add's plain branch (lua/_lib/eventlog-append.lua) followed by el_retain, as the code below runs them;
-- a change to one is a change to both.
if ARGV[2] == '0' and (mode == '0' or (mode ~= '1' and string.sub(mode, 1, 1) ~= '1')) then
  local maxLen, maxAge, retain = 0, 0, nil
  if #mode > 1 then
--@include now-ms
--@include eventlog-retain
    maxLen, maxAge = el_retention(string.sub(mode, 3))
    retain = el_retain
  end
  local seq = redis.call('HGET', meta, 'seq')
  local seqText = string.format('%d', (seq and seq + 0 or 0) + 1)
  local id = redis.call('XADD', stream, '*', 'd', ARGV[1], 's', seqText)
  redis.call('HSET', meta, 'seq', seqText, 'last', id)
  if maxLen > 0 or maxAge > 0 then retain(stream, meta, maxLen, maxAge, false, nil) end
  return id
end
--@include now-ms
--@include eventlog-append
--@include eventlog-retain
local chain, maxLen, maxAge = mode == '1', 0, 0
if #mode > 1 then
  chain = string.sub(mode, 1, 1) == '1'
  maxLen, maxAge = el_retention(string.sub(mode, 3))
end
-- A plain append needs only the sequence number; a chained one also the last id and head.
local seq, last, head, now
if chain then
  local m = redis.call('HMGET', meta, 'seq', 'last', 'head')
  seq, last, head = m[1], m[2], m[3]
else
  seq = redis.call('HGET', meta, 'seq')
end
local res, err, seqText
res, seq, last, head, now, err, seqText =
  el_add(stream, KEYS[3], ARGV[1], ARGV[2], ARGV[3], chain, seq and seq + 0 or 0, last, head, nil)
if type(res) ~= 'string' then return res end
if chain then
  redis.call('HSET', meta, 'seq', seqText, 'last', last, 'head', head)
else
  redis.call('HSET', meta, 'seq', seqText, 'last', last)
end
if maxLen > 0 or maxAge > 0 then el_retain(stream, meta, maxLen, maxAge, chain, now) end
if err then return err end
return res
