-- LateAck: runs after an XACK that acknowledged fewer of a consumer's entries than it named. Finds those a claim
-- dead-lettered while this consumer held them (it stalled past claimIdleMs, then its handler succeeded after all)
-- and removes their dead letters: the entries were handled. It looks at the dead letters made since the consumer got
-- or last refreshed the entries (server time minus sinceMs, less a second of margin), newest first, at most 100 of
-- them. A dead letter is removed only when it names the group, the entry, this consumer as the holder (consumer) and
-- a claiming consumer (claimedBy): one made after a handler failed, or naming another holder, stays.
-- KEYS[1] dlq (stream): the dead-letter stream
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
for _, letter in ipairs(redis.call('XREVRANGE', KEYS[1], '+', string.format('%d', from), 'COUNT', '100')) do
  local f = letter[2]
  local id, g, holder, claimer
  for i = 1, #f, 2 do
    local k = f[i]
    if k == 'id' then
      id = f[i + 1]
    elseif k == 'group' then
      g = f[i + 1]
    elseif k == 'consumer' then
      holder = f[i + 1]
    elseif k == 'claimedBy' then
      claimer = f[i + 1]
    end
  end
  if claimer ~= nil and id ~= nil and wanted[id] and g == group and holder == consumer then
    redis.call('XDEL', KEYS[1], letter[1])
    wanted[id] = nil
    removed[#removed + 1] = id
  end
end
return removed
