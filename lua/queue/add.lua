-- Add: creates a batch of jobs in one queue partition. A job whose id exists already (waiting, running, dead, or
-- completed or cancelled within its resultTtlMs) is a duplicate: nothing is created or changed for it. A completed or
-- cancelled job past its resultTtlMs reads as gone even before a trim removes it: its id is created again. Delays are
-- counted on server time.
-- KEYS[1] jobs (hash): the partition's job fields ("j:<id>" record, ...; see lua/_lib/queue.lua)
-- KEYS[2] ready (stream): ready jobs of priority 0
-- KEYS[3] delayed (zset): "<priority digit><id>" -> due time (server ms)
-- KEYS[4] prio (zset): jobs of priority 1-9
-- KEYS[5] wake (stream): written (MAXLEN 1) when a job was put outside the ready stream, to wake blocked workers
-- KEYS[6] done (zset): completed job -> expiry (server ms)
-- KEYS[7] cancelled (zset): cancelled job -> expiry (server ms)
-- ARGV[1] count (integer): jobs in this call
-- ARGV[2] job (list): 3 arguments per job, repeated: id, record (the job's record as lua/_lib/queue.lua stores it,
-- packed by the client), route ("<delayMs> <priority>"; '' = the same as the job before it in this call)
-- Reply: number[]
--@include now-ms
--@include queue-due
--@include queue-add
local clock = {}
local ended = { KEYS[6], KEYS[7] }
local wake = false
local out = {}
local delay, prio
for i = 0, ARGV[1] - 1 do
  local b = 2 + i * 3
  local route = ARGV[b + 2]
  if route ~= '' or not delay then
    local d, p = string.match(route, '^(%d+) (%d)$')
    if not d then error('queue: malformed job route: ' .. route) end
    delay, prio = d + 0, p + 0
  end
  local created, woke = qa_add(KEYS, ARGV[b], ARGV[b + 1], prio, delay, clock, ended)
  out[i + 1] = created and 0 or 1
  if woke then wake = true end
end
if wake then redis.call('XADD', KEYS[5], 'MAXLEN', '1', '*', 'w', '1') end
return out
