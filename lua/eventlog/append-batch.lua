-- Append batch: N append calls (micro-batching) to one log, applied one after another in call order, each exactly
-- as lua/eventlog/append.lua does it (idempotency check, sequence, optional hash chain), each with its own reply or
-- error; the meta hash is written and retention applied once, after the last call. Call i has the three arguments
-- 2 + 3i, 3 + 3i and 4 + 3i; the calls with an idempotency window (windowMs > 0) take the dedupe keys from the third key
-- on, in call order (calls without one take no key).
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): seq, last, head, anchor (see append.lua)
-- KEYS[3] dedupe (string): the idempotency record of the first call with a window (one key per such call)
-- ARGV[1] maxLen (count): approximate length cap (XTRIM MAXLEN ~); 0 = none
-- ARGV[2] maxAgeMs (ms): entries older than this (server time) are trimmed (XTRIM MINID ~); 0 = none
-- ARGV[3] chain (flag): 1 = hash-chain the entries
-- ARGV[4] calls (count): number of calls N
-- ARGV[5] payload (string): call 1's encoded event
-- ARGV[6] windowMs (ms): call 1's idempotency window; 0 = no idempotency key
-- ARGV[7] digest (string): call 1's payload digest, stored with its idempotency key ("" = none)
-- Reply: Array<[ok: number, id: string, duplicate?: number]>
-- (per call: {1, id, duplicate 0/1/2} as append.lua, or {0, error text})
--@include now-ms
--@include eventlog-append
local stream, meta = KEYS[1], KEYS[2]
local maxLen, maxAge, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local st = el_open(meta, ARGV[3] == '1')
local reply = {}
local nextKey = 3
for i = 1, n do
  local window = tonumber(ARGV[3 + 3 * i])
  local dedupe = ''
  if window > 0 then
    dedupe = KEYS[nextKey]
    nextKey = nextKey + 1
  end
  local ok, res = pcall(el_add, st, stream, dedupe, ARGV[2 + 3 * i], window, ARGV[4 + 3 * i])
  if ok and type(res) == 'string' then
    reply[i] = { 1, res, 0 }
  elseif ok then
    reply[i] = { 1, res[1], res[2] }
  else
    reply[i] = { 0, tostring(type(res) == 'table' and res.err or res) }
  end
end
el_close(st, stream, meta, maxLen, maxAge)
return reply
