-- Refresh: resets the idle time of entries a live consumer still holds (their handlers run, or their XACK is on its
-- way), so no consumer reclaims them as idle while their holder is alive. Only entries still pending for that
-- consumer are refreshed: one reclaimed, acknowledged or dead-lettered meanwhile is left alone. Delivery counts do
-- not change (XCLAIM ... JUSTID to the holder itself, min-idle-time 0).
-- KEYS[1] stream (stream): the log
-- ARGV[1] group (string): consumer group
-- ARGV[2] consumer (string): the consumer holding the entries
-- ARGV[3] id (string): an entry's id (one argument per entry, from the third on)
-- Reply: string[]
-- (the ids refreshed: still pending for the consumer and still in the stream)
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local ids = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('XPENDING', stream, group, id, id, 1, consumer)[1] then ids[#ids + 1] = id end
end
local refreshed = {}
for from = 1, #ids, 500 do
  local args = { 'XCLAIM', stream, group, consumer, 0 }
  for i = from, math.min(from + 499, #ids) do args[#args + 1] = ids[i] end
  args[#args + 1] = 'JUSTID'
  for _, id in ipairs(redis.call(unpack(args))) do refreshed[#refreshed + 1] = id end
end
return refreshed
