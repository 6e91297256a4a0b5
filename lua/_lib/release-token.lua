-- release-token: compare-and-delete, shared by lua/lock/release.lua and lua/cache/unlock.lua. rt_release(key, token)
-- deletes the string `key` only while it holds `token` (never someone else's lock) and returns whether it did.
local function rt_release(key, token)
  if redis.call('GET', key) == token then
    redis.call('DEL', key)
    return true
  end
  return false
end
