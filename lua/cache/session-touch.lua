-- Session touch: renews a session's expiry without rewriting its data; does nothing for a destroyed session.
-- KEYS[1] session (string): the encoded session
-- KEYS[2] tombstone (string): present while the session id is destroyed
-- ARGV[1] ttlMs (ms): new expiry of the session
-- Reply: number
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
