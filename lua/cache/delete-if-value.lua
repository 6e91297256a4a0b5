-- Delete if value: removes one cache entry and its fill lock, as delete.lua does, only while the entry still holds
-- the value a reader found it could not decode (compared by SHA1): an entry anybody wrote since is kept.
-- KEYS[1] entry (hash): the entry
-- KEYS[2] lock (string): the fill lock
-- ARGV[1] sha1 (string): SHA1 (hex) of the value read
-- Reply: number
local v = redis.call('HGET', KEYS[1], 'v')
if not v or redis.sha1hex(v) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
