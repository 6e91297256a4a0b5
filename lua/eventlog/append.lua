-- Append: adds one event to the log unless its idempotency key was already used within its window, then trims.
-- A duplicate appends nothing and returns the first append's id (duplicate 1), or 2 when the key was first used with
-- another payload (its digest differs). Every entry gets the next sequence number
-- (field s); with chain=1 also the previous entry's hash (p) and its own (h = sha1(p \n id \n s \n d)).
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): seq (last sequence number), last (last id), head (last hash), anchor (first id after a trim)
-- KEYS[3] dedupe (string): the idempotency key's record holding the first append's id (unused when window is 0)
-- ARGV[1] payload (string): the encoded event
-- ARGV[2] windowMs (ms): how long the idempotency key is remembered; 0 = no idempotency key
-- ARGV[3] maxLen (count): approximate length cap (XTRIM MAXLEN ~); 0 = none
-- ARGV[4] maxAgeMs (ms): entries older than this (server time) are trimmed (XTRIM MINID ~); 0 = none
-- ARGV[5] chain (flag): 1 = hash-chain the entry
-- ARGV[6] digest (string): the payload's digest, stored with the idempotency key ("" = none)
-- Reply: string | [id: string, duplicate: number]
-- (appended: the new id, a string, no table; a duplicate: the first append's id and 1, or 2 for another payload)
--@include now-ms
--@include eventlog-append
local chain = ARGV[5] == '1'
local st = el_open(KEYS[2], chain)
local res = el_add(st, KEYS[1], KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[6])
el_close(st, KEYS[1], KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
return res
