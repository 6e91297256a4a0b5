-- Append batch: N append calls (micro-batching) to one log, applied one after another in call order, each exactly
-- as lua/eventlog/append.lua does it (idempotency check, sequence, optional hash chain), each with its own reply or
-- error; the meta hash is written and retention applied once, after the last call. Call i has the three arguments
-- 3i - 1, 3i and 3i + 1 (N = (#ARGV - 1) / 3); the calls with an idempotency window (windowMs > 0) take the dedupe
-- keys from the third key on, in call order (calls without one take no key).
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): seq, last, head, anchor (see append.lua)
-- KEYS[3] dedupe (string): the idempotency record of the first call with a window (one key per such call)
-- ARGV[1] mode (string): 0 | 1 (1 = hash-chain the entries), or with retention "<0|1> <maxLen> <maxAgeMs>" (see append.lua)
-- ARGV[2] payload (string): call 1's encoded event
-- ARGV[3] windowMs (ms): call 1's idempotency window; 0 = no idempotency key
-- ARGV[4] digest (string): call 1's payload digest, stored with its idempotency key ("" = none)
-- Reply: Array<[ok: number, id: string, duplicate?: number]>
-- (per call: {1, id, duplicate 0/1/2} as append.lua, or {0, error text})
--@include now-ms
--@include eventlog-dedupe
--@include eventlog-append
--@include eventlog-retain
local stream, meta, mode = KEYS[1], KEYS[2], ARGV[1]
local chain, maxLen, maxAge = mode == '1', 0, 0
if #mode > 1 then
  chain = string.sub(mode, 1, 1) == '1'
  maxLen, maxAge = el_retention(string.sub(mode, 3))
end
local m = redis.call('HMGET', meta, 'seq', 'last', 'head')
local seq, last, head, now = m[1] and m[1] + 0 or 0, m[2], m[3], nil
local seq0 = seq
local reply = {}
local nextKey = 3
for i = 1, (#ARGV - 1) / 3 do
  local window = ARGV[3 * i]
  local dedupe = ''
  if window ~= '0' then
    dedupe = KEYS[nextKey]
    nextKey = nextKey + 1
  end
  local ok, res, s, l, h, t, err =
    pcall(el_add, stream, dedupe, ARGV[3 * i - 1], window, ARGV[3 * i + 1], chain, seq, last, head, now)
  if not ok then
    reply[i] = { 0, tostring(type(res) == 'table' and res.err or res) }
  elseif type(res) == 'string' then
    reply[i] = err and { 0, err.err } or { 1, res, 0 }
    seq, last, head, now = s, l, h, t
  else
    reply[i] = { 1, res[1], res[2] }
  end
end
if seq ~= seq0 then
  if chain then
    redis.call('HSET', meta, 'seq', seq, 'last', last, 'head', head)
  else
    redis.call('HSET', meta, 'seq', seq, 'last', last)
  end
  if maxLen > 0 or maxAge > 0 then el_retain(stream, meta, maxLen, maxAge, chain, now) end
end
return reply
