-- Claim: takes over entries of the group idle for at least minIdleMs (any consumer including dead ones) and
-- dead-letters those delivered more than maxDeliveries times (their consumer died or stalled on the last attempt).
-- One XPENDING from the cursor lists up to 10 x count pending entries with the consumer holding each, its idle time
-- and its delivery count (the bound XAUTOCLAIM scans too: a group holding many busy entries costs no more per claim),
-- and the idle ones among them, up to count, are claimed with one XCLAIM, so a dead letter names the consumer that
-- held the entry (consumer) and the one whose claim dead-lettered it (claimedBy). XCLAIM drops from the group,
-- without returning them, the entries deleted from the log meanwhile. The next cursor is exclusive ("(" and the last
-- id looked at), or 0-0 once the pending entries are all looked at.
-- KEYS[1] stream (stream): the log
-- KEYS[2] dlq (stream): the dead-letter stream
-- KEYS[3] claims (stream): index of the dead letters claims made (entry id, group, holder, dead letter id), ~1000 kept
-- ARGV[1] group (string): consumer group
-- ARGV[2] consumer (string): the consumer taking the entries
-- ARGV[3] minIdleMs (ms): only entries idle at least this long
-- ARGV[4] cursor (string): where the pending entries are looked at from, 0-0 to start over
-- ARGV[5] count (count): at most this many entries
-- ARGV[6] maxDeliveries (count): deliveries allowed before dead-lettering
-- Reply: [cursor: string, entries: Array<[id: string, fields: string[], deliveries: number]>, deadLettered: number]
local stream, group, claimer, index = KEYS[1], ARGV[1], ARGV[2], KEYS[3]
local count = tonumber(ARGV[5])
local scan = count * 10
local pending = redis.call('XPENDING', stream, group, ARGV[4], '+', scan)
local m = #pending
local minIdle = tonumber(ARGV[3])
local idle, n, looked = {}, 0, m
for i = 1, m do
  local row = pending[i]
  if row[3] >= minIdle then
    n = n + 1
    idle[n] = row
    if n == count then
      looked = i
      break
    end
  end
end
local cursor = '0-0'
-- More may follow what was looked at: a full scan, or a full claim. Nothing lies after the largest id (an exclusive
-- range from it is an error).
if m > 0 and (m == scan or looked < m) then
  local last = pending[looked][1]
  if last ~= '18446744073709551615-18446744073709551615' then cursor = '(' .. last end
end
if n == 0 then return { cursor, {}, 0 } end
local args = { 'XCLAIM', stream, group, claimer, ARGV[3] }
for i = 1, n do args[i + 5] = idle[i][1] end
-- A write first: Redis lets a script that has written finish, so a full Redis (maxmemory, noeviction) still takes
-- the dead letters below.
local claimed = redis.call(unpack(args))
local maxDeliveries = tonumber(ARGV[6])
local out = {}
local dead = 0
local j = 1
for _, entry in ipairs(claimed) do
  local id = entry[1]
  -- XCLAIM answers in the order of its ids, leaving out the deleted ones.
  while idle[j][1] ~= id do j = j + 1 end
  local row = idle[j]
  -- Deliveries before this claim (XCLAIM counted one more).
  local delivered = row[4]
  if delivered >= maxDeliveries then
    local payload = ''
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'd' then payload = fields[i + 1] end
    end
    local letter = redis.call('XADD', KEYS[2], '*', 'id', id, 'group', group, 'consumer', row[2], 'claimedBy', claimer,
      'deliveries', delivered,
      'error', 'not acknowledged after ' .. delivered .. ' deliveries (the consumer died or timed out)', 'd', payload)
    redis.call('XACK', stream, group, id)
    -- Where the holder's late acknowledgement finds this dead letter without reading dead letters (and their payloads).
    -- Best effort (pcall): a refusal (the key holds another type) leaves the dead letter made and the entry acknowledged.
    redis.pcall('XADD', index, 'MAXLEN', '~', '1000', '*', 'id', id, 'group', group, 'consumer', row[2], 'letter', letter)
    dead = dead + 1
  else
    out[#out + 1] = { id, entry[2], delivered + 1 }
  end
end
return { cursor, out, dead }
