-- Tag version: returns a tag's current version token, creating it from ARGV[1] when the tag has none (never
-- created, invalidated, expired or evicted), and keeps it alive at least ttlMs. Entries record the tokens they
-- were computed under; invalidateTag deletes the tag key, so every entry recorded under the old token is invalid,
-- and a token is never reused (a lost tag key can only invalidate entries, never revive them).
-- KEYS[1] tag (string): the tag's version token
-- ARGV[1] token (string): a fresh random token, used when the tag has none
-- ARGV[2] ttlMs (ms): keep the token at least this long
-- Reply: string
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
