-- VerifyPage: one page of verify()'s walk to the stream's real end, read in one atomic step with the meta hash's last
-- id, chain head and trim anchor: the oldest entry a page returns and the anchor it is checked against agree even
-- while appends trim the log, and an entry after the recorded last id in the same snapshot was not appended by
-- EventLog.append (every append records its id in the same script). Reads only.
-- A page holds at most `count` entries and at most `budget` bytes of them (ids, field names and values), except that
-- its first entry is always returned, whatever its size, so the walk moves on. The entries are read in steps of as
-- many as fit in what is left of the budget at the largest entry size expected (`entryBytes`, raised by any larger
-- entry seen): a step that ends up past the budget reads at most one step of entries more than the page returns.
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): last (last id), head (last hash), anchor (first id kept by the last retention trim)
-- ARGV[1] start (string): XRANGE start, "-" or "(<id>" (exclusive)
-- ARGV[2] count (count): most entries
-- ARGV[3] budget (count): most bytes of entries
-- ARGV[4] entryBytes (count): the largest entry size expected, in bytes
-- Reply: [last: string | null, head: string | null, anchor: string | null, entries: Array<[id: string, fields: string[]]>, ended: number, entryBytes: number]
-- (ended: 1 when the page reached the end of the stream; entryBytes: the largest entry size expected from now on)
local m = redis.call('HMGET', KEYS[2], 'last', 'head', 'anchor')
local stream, start = KEYS[1], ARGV[1]
local count, budget, big = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out, n, bytes = {}, 0, 0
while true do
  if n > 0 and bytes >= budget then return { m[1], m[2], m[3], out, 0, big } end
  local step = math.min(count - n, math.max(1, math.floor((budget - bytes) / big)))
  local chunk = redis.call('XRANGE', stream, start, '+', 'COUNT', step)
  for _, entry in ipairs(chunk) do
    local size = #entry[1]
    for _, f in ipairs(entry[2]) do size = size + #f end
    if size > big then big = size end
    if n > 0 and bytes + size > budget then return { m[1], m[2], m[3], out, 0, big } end
    n = n + 1
    out[n] = entry
    bytes = bytes + size
  end
  if #chunk < step then return { m[1], m[2], m[3], out, 1, big } end
  if n == count then return { m[1], m[2], m[3], out, 0, big } end
  start = '(' .. chunk[#chunk][1]
end
