-- Append: adds one event to the log unless its idempotency key was already used within its window, then trims.
-- A duplicate appends nothing and returns the first append's id. Every entry gets the next sequence number
-- (field s); with chain=1 also the previous entry's hash (p) and its own (h = sha1(p \n id \n s \n d)).
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): seq (last sequence number), last (last id), head (last hash), anchor (first id after a trim)
-- KEYS[3] dedupe (string): the idempotency key's record holding the first append's id (unused when window is 0)
-- ARGV[1] payload (string): the encoded event
-- ARGV[2] windowMs (ms): how long the idempotency key is remembered; 0 = no idempotency key
-- ARGV[3] maxLen (count): approximate length cap (XTRIM MAXLEN ~); 0 = none
-- ARGV[4] maxAgeMs (ms): entries older than this (server time) are trimmed (XTRIM MINID ~); 0 = none
-- ARGV[5] chain (flag): 1 = hash-chain the entry
-- Reply: [id: string, duplicate: number]
--@include now-ms
local window = tonumber(ARGV[2])
if window > 0 then
  local first = redis.call('GET', KEYS[3])
  if first then return { first, 1 } end
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local now = now_ms()
local chain = ARGV[5] == '1'
local id
if chain then
  -- The hash covers the id, so the script picks the id itself: server time, or last id + 1 within one ms.
  local last = redis.call('HGET', KEYS[2], 'last')
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
  local prev = redis.call('HGET', KEYS[2], 'head') or '0000000000000000000000000000000000000000'
  local hash = redis.sha1hex(prev .. '\n' .. id .. '\n' .. seq .. '\n' .. ARGV[1])
  redis.call('XADD', KEYS[1], id, 'd', ARGV[1], 's', seq, 'p', prev, 'h', hash)
  redis.call('HSET', KEYS[2], 'last', id, 'head', hash)
else
  id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[1], 's', seq)
  redis.call('HSET', KEYS[2], 'last', id)
end
if window > 0 then redis.call('SET', KEYS[3], id, 'PX', window) end
local trimmed = 0
local maxLen = tonumber(ARGV[3])
if maxLen > 0 then trimmed = trimmed + redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxLen) end
local maxAge = tonumber(ARGV[4])
if maxAge > 0 then
  trimmed = trimmed + redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', now - maxAge))
end
if trimmed > 0 and chain then
  -- Retention moved the head: remember the first kept entry, so verify() can tell trimming from deletion.
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  if first then redis.call('HSET', KEYS[2], 'anchor', first[1]) end
end
return { id, 0 }
