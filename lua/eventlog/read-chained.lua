-- ReadChained: one page of a chained log read together with what checking its links needs, in one atomic step: the
-- recorded last id (an entry after it was not appended by EventLog.append), the trim anchor, and entries before the
-- page's oldest entry, newest first (its predecessor in the chain is the nearest valid one of the 16 before it). The
-- nearest one comes first: when the page's oldest entry names its hash, it is all the check needs in a sound log.
-- Otherwise more follow, up to 16, as long as the reply (the page and them) holds at most `budget` bytes of entries
-- (the nearest one comes whatever its size), read in steps of as many as fit at the largest entry size expected
-- (`entryBytes`, raised by any larger entry seen). Reads only.
-- KEYS[1] stream (stream): the log
-- KEYS[2] meta (hash): last (last id), anchor (first id kept by the last retention trim)
-- ARGV[1] reverse (flag): 1 = newest first (XREVRANGE high low)
-- ARGV[2] low (string): lowest id, inclusive, or "-"
-- ARGV[3] high (string): highest id, inclusive, or "+"
-- ARGV[4] count (count): most entries
-- ARGV[5] budget (count): most bytes of entries in the reply (the page's own count as many as `count` makes them)
-- ARGV[6] entryBytes (count): the largest entry size expected, in bytes
-- Reply: [last: string | null, anchor: string | null, entries: Array<[id: string, fields: string[]]>, before: Array<[id: string, fields: string[]]>, more: number]
-- (more: 1 when fewer than 16 entries before the page were returned and older ones are left)
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
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end
local before, n, bytes = {}, 0, 0
if not oldest then return { m[1], m[2], entries, before, 0 } end
local budget, big = tonumber(ARGV[5]), tonumber(ARGV[6])
local links = field(oldest[2], 'p')
local from, step = '(' .. oldest[1], 1
while true do
  local chunk = redis.call('XREVRANGE', KEYS[1], from, '-', 'COUNT', step)
  for _, entry in ipairs(chunk) do
    local size = #entry[1]
    for _, f in ipairs(entry[2]) do size = size + #f end
    if size > big then big = size end
    if n > 0 and bytes + size > budget then return { m[1], m[2], entries, before, 1 } end
    n = n + 1
    before[n] = entry
    bytes = bytes + size
  end
  if #chunk < step or n == 16 then return { m[1], m[2], entries, before, 0 } end
  if n == 1 then
    if links ~= nil and field(before[1][2], 'h') == links then return { m[1], m[2], entries, before, 1 } end
    -- More are needed: the reply holds the page too, so the entries before it fill what the page leaves.
    for _, entry in ipairs(entries) do
      budget = budget - #entry[1]
      for _, f in ipairs(entry[2]) do budget = budget - #f end
    end
  end
  if bytes >= budget then return { m[1], m[2], entries, before, 1 } end
  from = '(' .. chunk[#chunk][1]
  step = math.min(16 - n, math.max(1, math.floor((budget - bytes) / big)))
end
