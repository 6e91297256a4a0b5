-- now_ms(): Redis server time in whole milliseconds (TIME, safe under effects replication since Redis 5).
-- Arithmetic converts TIME's digit strings directly (cheaper inside Redis than tonumber() and math.floor, which are
-- global lookups and C calls); the microseconds are cut to whole milliseconds exactly.
local function now_ms()
  local t = redis.call('TIME')
  local us = t[2] + 0
  return t[1] * 1000 + (us - us % 1000) / 1000
end
