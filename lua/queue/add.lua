-- Add: creates a batch of jobs in one queue partition. A job whose id exists already (waiting, running, finished and
-- still retained, or dead) is a duplicate: nothing is created or changed for it. Delays are counted on server time.
-- KEYS[1] jobs (hash): the partition's job fields ("j:<id>" record, ...; see lua/_lib/queue.lua)
-- KEYS[2] ready (stream): ready jobs of priority 0
-- KEYS[3] delayed (zset): "<priority digit><id>" -> due time (server ms)
-- KEYS[4] prio (zset): jobs of priority 1-9
-- KEYS[5] wake (stream): written (MAXLEN 1) when a job was put outside the ready stream, to wake blocked workers
-- ARGV[1] count (integer): jobs in this call
-- ARGV[2] job (list): 11 arguments per job, repeated: id, data, delayMs, priority, attempts, backoff type (0 none,
-- 1 fixed, 2 exponential), backoff delayMs, backoff maxDelayMs (0 none), jitter (per mille), resultTtlMs, group ('' none)
-- Reply: number[]
--@include now-ms
--@include queue-add
local clock = {}
local wake = false
local out = {}
for i = 0, tonumber(ARGV[1]) - 1 do
  local b = 2 + i * 11
  local created, woke = qa_add(KEYS, ARGV[b], b + 1, clock)
  out[i + 1] = created and 0 or 1
  if woke then wake = true end
end
if wake then redis.call('XADD', KEYS[5], 'MAXLEN', '1', '*', 'w', '1') end
return out
