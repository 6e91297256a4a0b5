-- Delete: removes one cache entry and its fill lock, which revokes the fill tokens of the loads in progress (see
-- get.lua): a load that started before the delete cannot write its (now outdated) value back afterwards.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock
-- ARGV: none
-- Reply: number
local existed = redis.call('HEXISTS', KEYS[1], 'v')
redis.call('DEL', KEYS[1], KEYS[2])
return existed
