-- Session set: stores a session unless it was destroyed (a tombstone exists), so a slow request that finishes
-- after logout cannot bring the session back. Unchanged data only has its expiry renewed (nothing rewritten).
-- KEYS[1] session (string): the encoded session
-- KEYS[2] tombstone (string): present while the session id is destroyed
-- ARGV[1] data (string): the encoded session
-- ARGV[2] ttlMs (ms): expiry of the session
-- ARGV[3] restore (0|1): 1 = an unchanged session written again because its key was gone: written only while the
-- key is still missing (a request that stored a change meanwhile keeps it)
-- Reply: number
-- (1 written, 0 only its expiry renewed or, restoring, another write came first, -1 destroyed)
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
if ARGV[3] == '1' then
  if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
  return 0
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
