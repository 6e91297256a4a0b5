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
--@include eventlog-append
local st = el_open(KEYS[2], true)
local res = el_add_keyed(st, KEYS[1], KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[5], ARGV[6], ARGV[7], ARGV[8],
  ARGV[9], ARGV[10])
el_close(st, KEYS[1], KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
return res
