-- Append batch: N append calls (micro-batching) to one log, applied one after another in call order, each exactly
-- as lua/eventlog/append.lua does it (idempotency check, sequence, optional hash chain, retention), each with its
-- own reply or error. Call i uses KEYS[3i-2..3i] and ARGV[4 + 2i - 1..4 + 2i]: the header below describes call 1,
-- and the same group repeats once per call (the stream and meta keys are the same for every call of one log).
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): seq, last, head, anchor (see append.lua)
-- KEYS[3] dedupe (string): call 1's idempotency record (unused when its window is 0)
-- ARGV[1] maxLen (count): approximate length cap (XTRIM MAXLEN ~); 0 = none
-- ARGV[2] maxAgeMs (ms): entries older than this (server time) are trimmed (XTRIM MINID ~); 0 = none
-- ARGV[3] chain (flag): 1 = hash-chain the entries
-- ARGV[4] calls (count): number of calls N
-- ARGV[5] payload (string): call 1's encoded event
-- ARGV[6] windowMs (ms): call 1's idempotency window; 0 = no idempotency key
-- Reply: Array<[ok: number, id: string, duplicate?: number]>
-- (per call: {1, id, duplicate 0/1} as append.lua, or {0, error text})
--@include now-ms
--@include eventlog-append
local maxLen, maxAge, chain, n = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local reply = {}
for i = 1, n do
  local k, a = 3 * (i - 1), 3 + 2 * i
  local ok, res = pcall(el_append, KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a], tonumber(ARGV[a + 1]), maxLen,
    maxAge, chain)
  if ok then
    reply[i] = { 1, res[1], res[2] }
  else
    reply[i] = { 0, tostring(type(res) == 'table' and res.err or res) }
  end
end
return reply
