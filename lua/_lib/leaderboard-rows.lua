-- leaderboard-rows: the reply of lua/leaderboard/range.lua and around.lua, built for the cost inside Redis (every
-- reply element, table and string allocated counts). lb_rows(rows, head, tables): rows as ZRANGE WITHSCORES gives
-- them (elements keep their arrival prefix, stripped by the client). The rows go back joined by "\0" into one
-- string, followed by head (around's first rank, if any) and the number of row fields n: a client that splits the
-- string and finds other than n fields before them has an element holding a "\0" and asks again with tables set,
-- which answers {head or -1, rows, metas}. Without stored metadata (the meta hash KEYS[1] does not exist) the
-- string is the whole reply, else {string, metas}: the metadata of each row's member.
local function lb_rows(rows, head, tables)
  local n = #rows
  local metas
  if tables or redis.call('EXISTS', KEYS[1]) == 1 then
    local members = {}
    for i = 1, n, 2 do members[(i + 1) / 2] = string.sub(rows[i], 18) end
    metas = n > 0 and redis.call('HMGET', KEYS[1], unpack(members)) or {}
    if tables then return { head or -1, rows, metas } end
  end
  if head then
    rows[n + 1], rows[n + 2] = head, n
  else
    rows[n + 1] = n
  end
  if metas then return { table.concat(rows, '\0'), metas } end
  return table.concat(rows, '\0')
end
