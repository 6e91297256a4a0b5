-- ReadChained: one page of a chained log read together with what checking its links needs, in one atomic step: the
-- recorded last id (an entry after it was not appended by EventLog.append), the trim anchor, and up to 16 entries
-- before the page's oldest entry (its predecessor in the chain is the nearest of them whose hash it names). Reads only.
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): last (last id), anchor (first id kept by the last retention trim)
-- ARGV[1] reverse (flag): 1 = newest first (XREVRANGE high low)
-- ARGV[2] low (string): lowest id, inclusive, or "-"
-- ARGV[3] high (string): highest id, inclusive, or "+"
-- ARGV[4] count (count): most entries
-- Reply: [last: string | null, anchor: string | null, entries: Array<[id: string, fields: string[]]>, before: Array<[id: string, fields: string[]]>]
local m = redis.call('HMGET', KEYS[2], 'last', 'anchor')
local entries
local oldest
if ARGV[1] == '1' then
  entries = redis.call('XREVRANGE', KEYS[1], ARGV[3], ARGV[2], 'COUNT', ARGV[4])
  oldest = entries[#entries]
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[3], 'COUNT', ARGV[4])
  oldest = entries[1]
end
local before = {}
if oldest then before = redis.call('XREVRANGE', KEYS[1], '(' .. oldest[1], '-', 'COUNT', 16) end
return { m[1], m[2], entries, before }
