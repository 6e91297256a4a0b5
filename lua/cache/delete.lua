-- Delete: removes one cache entry, with the fill tokens of the loads in progress (see get.lua), so a load that
-- started before the delete cannot write its (now outdated) value back afterwards.
-- KEYS[1] entry (hash): the entry
-- ARGV: none
-- Reply: number
local existed = redis.call('HEXISTS', KEYS[1], 'v')
redis.call('DEL', KEYS[1])
return existed
