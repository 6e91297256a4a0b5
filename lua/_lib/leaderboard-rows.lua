-- leaderboard-rows: the reply of lua/leaderboard/range.lua and around.lua, built for the cost inside Redis (every
-- reply element and table counts). lb_rows(rows, head): rows as ZRANGE WITHSCORES gives them (elements keep their
-- arrival prefix, stripped by the client). Without stored metadata (the meta hash KEYS[1] does not exist) the reply
-- is one string: head (if any) and the rows joined by "\0" - unless an element holds a "\0" itself, which the joined
-- rows without separators reveal. Otherwise {head, rows, metas} (head omitted when nil): the metadata of each row.
local function lb_rows(rows, head)
  if redis.call('EXISTS', KEYS[1]) == 0 then
    if not string.find(table.concat(rows), '\0', 1, true) then
      local joined = table.concat(rows, '\0')
      if head == nil then return joined end
      return head .. '\0' .. joined
    end
    if head == nil then return { rows, {} } end
    return { head, rows, {} }
  end
  local members = {}
  for i = 1, #rows, 2 do members[(i + 1) / 2] = string.sub(rows[i], 18) end
  local metas = #members > 0 and redis.call('HMGET', KEYS[1], unpack(members)) or {}
  if head == nil then return { rows, metas } end
  return { head, rows, metas }
end
