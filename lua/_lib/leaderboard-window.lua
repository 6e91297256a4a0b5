-- leaderboard-window: the server-time check of lua/leaderboard/{remove,set-meta}.lua. The client picks the boards of
-- a call by its own clock and sends the window of server times in which they are every board that can exist; outside
-- it, a board the clock missed may hold the member. Include after now-ms.

-- nil when server time lies strictly between after and before (ms, as sent), else the LB_CLOCK_SKEW error reply.
local function lb_outside_window(after, before)
  local now = now_ms()
  if now > after + 0 and now < before + 0 then return nil end
  return redis.error_reply('LB_CLOCK_SKEW server time ' .. now .. ' lies outside the boards named, ' .. after
    .. ' to ' .. before)
end
