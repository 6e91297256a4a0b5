-- now_ms(): Redis server time in whole milliseconds (TIME, safe under effects replication since Redis 5).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
