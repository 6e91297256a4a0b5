-- AppendKeyed: adds one event to a keyed chain (HMAC-SHA256 computed by the client, which holds the key; the key
-- never reaches Redis), unless its idempotency key was already used within its window, then trims. The link check
-- is atomic here: the entry is written only when the client built it on the current head (prev), sequence number
-- and last id; otherwise nothing is written and the reply carries the state to build on (status 3), so the client
-- computes the MAC again and retries. Entry fields: d (payload), s (seq), p (previous MAC), h (MAC), k (key id).
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): seq, last, head, anchor (see append.lua)
-- KEYS[3] dedupe (string): the idempotency key's record (unused when window is 0)
-- ARGV[1] payload (string): the encoded event
-- ARGV[2] windowMs (ms): how long the idempotency key is remembered; 0 = no idempotency key
-- ARGV[3] maxLen (count): approximate length cap (XTRIM MAXLEN ~); 0 = none
-- ARGV[4] maxAgeMs (ms): entries older than this (server time) are trimmed (XTRIM MINID ~); 0 = none
-- ARGV[5] digest (string): the payload's digest, stored with the idempotency key ("" = none)
-- ARGV[6] prev (string): the head the entry links to (64 zeros for the first entry)
-- ARGV[7] seq (count): the entry's sequence number
-- ARGV[8] id (string): the entry's stream id
-- ARGV[9] keyId (string): id of the key the MAC was computed with
-- ARGV[10] mac (string): hex HMAC-SHA256 of prev \n id \n seq \n keyId \n payload
-- Reply: [id: string, status: number, now: number, last?: string, head?: string, seq?: number]
-- (status 0 appended, 1 duplicate, 2 idempotency conflict, 3 stale: last/head/seq are the current state, "" = none)
--@include now-ms
--@include eventlog-dedupe
--@include eventlog-append
--@include eventlog-retain
-- Appended only when the client built the entry on the current state: prev is the recorded head (the genesis hash
-- for the first entry), seq the next sequence number, and id comes after the last id, at most 10 s before
-- max(server time, last id's ms) and not after it (nor after the ms of the stream's last id, when something else added
-- an entry with a later id, even one deleted since). Otherwise nothing is written and the reply carries the state to
-- build on: { '', 3, now, last, head, seq }. Success { id, 0, now }, duplicate { first id, 1 or 2, now }.
local stream, meta, dedupe, window, digest = KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[5]
local prev, id = ARGV[6], ARGV[8]
local now = now_ms()
if window ~= '0' then
  local first, dup = el_dedupe(dedupe, digest)
  if first then return { first, dup, now } end
end
local m = redis.call('HMGET', meta, 'seq', 'last', 'head')
local seq, last, head = m[1] and m[1] + 0 or 0, m[2], m[3]
-- Stream ids compare as (ms, seq) numbers.
local lastMs, lastSeq = -1, 0
if last then
  local dash = string.find(last, '-', 1, true)
  lastMs, lastSeq = string.sub(last, 1, dash - 1) + 0, string.sub(last, dash + 1) + 0
end
local idMs, idSeq
local dash = string.find(id, '-', 1, true)
if dash then idMs, idSeq = tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1)) end
local top = math.max(now, lastMs)
local stale = prev ~= (head or '0000000000000000000000000000000000000000000000000000000000000000')
  or tonumber(ARGV[7]) ~= seq + 1 or idMs == nil or idSeq == nil or idMs < lastMs
  or (idMs == lastMs and idSeq <= lastSeq)
if not stale and idMs > top then
  -- An entry added by something else may lie after the last append with an id in the future (verify() reports it):
  -- the client was told its id (the reply after a failed XADD, below), and an id right after it is accepted. Its id
  -- is the stream's last id, also when the entry was deleted since (Redis still requires an id after it).
  local newest = redis.call('EXISTS', stream) == 1 and el_last_id(stream)
  if newest then
    local newestMs = tonumber(string.sub(newest, 1, string.find(newest, '-', 1, true) - 1))
    if newestMs > top then top = newestMs end
  end
end
if stale or idMs > top or idMs < top - 10000 then
  return { '', 3, now, last or '', head or '', seq }
end
-- The sequence number as text once: redis.call formats a number argument with %.17g on every call.
local seqText = string.format('%d', seq + 1)
local added = redis.pcall('XADD', stream, id, 'd', ARGV[1], 's', seqText, 'p', prev, 'h', ARGV[10], 'k', ARGV[9])
if type(added) == 'table' and added.err then
  -- Any other refusal (a full Redis: OOM, a wrong type...) is the call's error, at once.
  if not string.find(added.err, 'equal or smaller than the target stream top item', 1, true) then
    return redis.error_reply(added.err)
  end
  -- An entry added by something else lies after the last append (verify() reports it), or did (deleted since): the
  -- client picks an id after the stream's last id.
  return { '', 3, now, el_last_id(stream), head or '', seq }
end
redis.call('HSET', meta, 'seq', seqText, 'last', id, 'head', ARGV[10])
if window ~= '0' then
  redis.call('SET', dedupe, digest == '' and id or id .. ' ' .. digest, 'PX', window)
end
local maxLen, maxAge = ARGV[3] + 0, ARGV[4] + 0
-- The client chose the id, up to 10 s before server time: retention by age must not trim the entry just appended (and
-- with it the whole log: approximate trimming removes whole nodes), so the threshold is never after it.
if maxAge > 0 and idMs < now - maxAge then maxAge = now - idMs end
if maxLen > 0 or maxAge > 0 then el_retain(stream, meta, maxLen, maxAge, true, now) end
return { id, 0, now }
