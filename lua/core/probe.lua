-- Probe: a self-test of the script path. Stores a value and bumps a counter in one slot, returns server time.
-- Used by health checks and by the registry's tests (two keys with one hash tag, typed reply).
-- KEYS[1] value (string): set to ARGV[1] with a TTL
-- KEYS[2] counter (integer): incremented by one, same TTL
-- ARGV[1] value (string): the value to store
-- ARGV[2] ttlMs (ms): expiry of both keys
-- Reply: [value: string, count: number, nowMs: number]
--@include now-ms
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local count = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return { ARGV[1], count, now_ms() }
