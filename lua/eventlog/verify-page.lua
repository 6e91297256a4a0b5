-- VerifyPage: one page of verify()'s walk to the stream's real end, read in one atomic step with the meta hash's last
-- id, chain head and trim anchor: the oldest entry a page returns and the anchor it is checked against agree even
-- while appends trim the log, and an entry after the recorded last id in the same snapshot was not appended by
-- EventLog.append (every append records its id in the same script). Reads only.
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): last (last id), head (last hash), anchor (first id kept by the last retention trim)
-- ARGV[1] start (string): XRANGE start, "-" or "(<id>" (exclusive)
-- ARGV[2] count (count): most entries
-- Reply: [last: string | null, head: string | null, anchor: string | null, entries: Array<[id: string, fields: string[]]>]
local m = redis.call('HMGET', KEYS[2], 'last', 'head', 'anchor')
return { m[1], m[2], m[3], redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2]) }
