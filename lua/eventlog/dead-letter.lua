-- DeadLetter: moves one entry pending for a consumer to the dead-letter stream with the error, and acknowledges it.
-- Does nothing when the entry is no longer pending for that consumer (another consumer reclaimed it meanwhile). An
-- entry deleted from the log meanwhile (trimmed by retention, or by hand) is only acknowledged: it is dropped from the
-- group as a claim drops such entries, not dead-lettered without its data. Works on a full Redis too (see below).
-- KEYS[1] stream (stream): the log
-- KEYS[2] dlq (stream): the dead-letter stream
-- ARGV[1] group (string): consumer group
-- ARGV[2] consumer (string): the consumer that holds the entry
-- ARGV[3] id (string): the entry's id
-- ARGV[4] error (string): why it failed
-- Reply: number
-- (1 dead-lettered, 0 not pending for the consumer, 2 the entry was deleted: acknowledged only)
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #pending == 0 then return 0 end
local entry = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])[1]
if not entry then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  return 2
end
-- A write first (the entry stays the consumer's; JUSTID leaves its delivery count alone): Redis lets a script that
-- has written finish, so a full Redis (maxmemory, noeviction) that refuses new data still takes the dead letter,
-- as the claim's dead-lettering does (its XCLAIM writes first), instead of refusing the XADD with OOM.
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0', ARGV[3], 'JUSTID')
local payload = ''
local fields = entry[2]
for i = 1, #fields, 2 do
  if fields[i] == 'd' then payload = fields[i + 1] end
end
redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'group', ARGV[1], 'consumer', ARGV[2],
  'deliveries', pending[1][4], 'error', ARGV[4], 'd', payload)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return 1
