-- VerifyPage: one page of verify()'s walk, read in one atomic step with the meta hash's last id, chain head and trim
-- anchor, so the oldest entry a page returns and the anchor it is checked against agree even while appends trim the
-- log. Reads only.
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): last (last id), head (last hash), anchor (first id kept by the last retention trim)
-- ARGV[1] start (string): XRANGE start, "-" or "(<id>" (exclusive)
-- ARGV[2] upTo (string): XRANGE end, the walk's last id; "" = the recorded last id (the first page)
-- ARGV[3] count (count): most entries
-- Reply: [last: string | null, head: string | null, anchor: string | null, entries: Array<[id: string, fields: string[]]>, length: number]
-- (length: the stream's length when there is no recorded last id, else 0)
local m = redis.call('HMGET', KEYS[2], 'last', 'head', 'anchor')
local upTo = ARGV[2]
if upTo == '' then upTo = m[1] end
if not upTo then return { false, false, m[3], {}, redis.call('XLEN', KEYS[1]) } end
return { m[1], m[2], m[3], redis.call('XRANGE', KEYS[1], ARGV[1], upTo, 'COUNT', ARGV[3]), 0 }
