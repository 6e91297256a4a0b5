-- Fence raise (Redlock): while the caller still holds the lock on this node, raise the fence counter to at least
-- the fence chosen for the quorum, so any later holder's INCR on this node goes above it.
-- KEYS[1] lock (string): the lock key on this node
-- KEYS[2] fence (integer): the lock's fence counter on this node
-- ARGV[1] token (string): the holder's token
-- ARGV[2] fence (integer): the chosen fence (max of the quorum's counters)
-- Reply: number
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local proposed = tonumber(ARGV[2])
if current < proposed then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
