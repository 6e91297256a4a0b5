-- Claim: takes over entries of the group idle for at least minIdleMs (XAUTOCLAIM, any consumer including dead ones)
-- and dead-letters those delivered more than maxDeliveries times (their consumer died on the last attempt).
-- KEYS[1] stream (stream): the log
-- KEYS[2] dlq (stream): the dead-letter stream
-- ARGV[1] group (string): consumer group
-- ARGV[2] consumer (string): the consumer taking the entries
-- ARGV[3] minIdleMs (ms): only entries idle at least this long
-- ARGV[4] cursor (string): XAUTOCLAIM start id, 0-0 to start over
-- ARGV[5] count (count): at most this many entries
-- ARGV[6] maxDeliveries (count): deliveries allowed before dead-lettering
-- Reply: [cursor: string, entries: Array<[id: string, fields: string[], deliveries: number]>, deadLettered: number]
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local maxDeliveries = tonumber(ARGV[6])
local out = {}
local dead = 0
for _, entry in ipairs(res[2]) do
  local id = entry[1]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = 1
  if pending[1] then deliveries = pending[1][4] end
  if deliveries > maxDeliveries then
    local payload = ''
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'd' then payload = fields[i + 1] end
    end
    redis.call('XADD', KEYS[2], '*', 'id', id, 'group', ARGV[1], 'consumer', ARGV[2], 'deliveries', deliveries - 1,
      'error', 'not acknowledged after ' .. (deliveries - 1) .. ' deliveries (the consumer died or timed out)',
      'd', payload)
    redis.call('XACK', KEYS[1], ARGV[1], id)
    dead = dead + 1
  else
    out[#out + 1] = { id, entry[2], deliveries }
  end
end
return { res[1], out, dead }
