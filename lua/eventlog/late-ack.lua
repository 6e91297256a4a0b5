-- LateAck: runs after an XACK that acknowledged fewer of a consumer's entries than it named. Finds those a claim
-- dead-lettered while this consumer held them (it stalled past claimIdleMs, then its handler succeeded after all)
-- and removes their dead letters: the entries were handled. It looks them up in the index the claims keep of the dead
-- letters they made (lua/eventlog/claim.lua), never reading a dead letter (each holds its entry's payload, up to
-- maxEventBytes): the index entries made since the consumer got or last refreshed the entries (server time minus
-- sinceMs, less a second of margin), newest first, at most 100 of them. A dead letter is removed only when its index
-- entry names the group, the entry and this consumer as the holder: one made after a handler failed (not indexed), or
-- naming another holder, stays; so does one removed from the dead-letter stream meanwhile (not counted).
-- KEYS[1] dlq (stream): the dead-letter stream
-- KEYS[2] claims (stream): the claims' index of their dead letters (id, group, consumer, letter)
-- ARGV[1] group (string): consumer group
-- ARGV[2] consumer (string): the consumer whose XACK came late
-- ARGV[3] sinceMs (ms): the longest time since the consumer got or last refreshed one of the entries
-- ARGV[4] id (string): an entry's id (one argument per entry, from the fourth on)
-- Reply: string[]
-- (the ids whose dead letter was removed)
--@include now-ms
local from = now_ms() - ARGV[3] - 1000
if from < 0 then from = 0 end
local wanted = {}
for i = 4, #ARGV do wanted[ARGV[i]] = true end
local group, consumer = ARGV[1], ARGV[2]
local removed = {}
for _, row in ipairs(redis.call('XREVRANGE', KEYS[2], '+', string.format('%d', from), 'COUNT', '100')) do
  local f = row[2]
  local id, g, holder, letter
  for i = 1, #f, 2 do
    local k = f[i]
    if k == 'id' then
      id = f[i + 1]
    elseif k == 'group' then
      g = f[i + 1]
    elseif k == 'consumer' then
      holder = f[i + 1]
    elseif k == 'letter' then
      letter = f[i + 1]
    end
  end
  if letter ~= nil and id ~= nil and wanted[id] and g == group and holder == consumer then
    redis.call('XDEL', KEYS[2], row[1])
    wanted[id] = nil
    if redis.call('XDEL', KEYS[1], letter) == 1 then removed[#removed + 1] = id end
  end
end
return removed
