-- queue-group-rate: the per-group rate limits of lua/queue/fetch.lua. Include after lua/_lib/ratelimit.lua, inside
-- the block of a call that has rules: a fetch without rules builds none of their functions (each function a script
-- defines is a closure built on every call that reaches it).

-- Takes one unit from every rate-limit rule of `group` at server time now, with the algorithms of
-- lua/_lib/ratelimit.lua (rl_load, rl_wait, rl_take, rl_entry); the rules' entries live in the groups hash, field
-- "r:<group>", in that library's format. Returns 0 when taken, otherwise the ms until the rules would admit it.
local function q_group_rate(K, group, rules, now)
  local field = 'r:' .. group
  local v = redis.call('HGET', K.groups, field)
  local stored = {}
  if v then
    for f, st in string.gmatch(v, '([^;=]+)=([^;]*)') do stored[f] = st end
  end
  local wait = 0
  for _, r in ipairs(rules) do
    rl_load(r, stored, now)
    local w = rl_wait(r, 1, now)
    if w > wait then wait = w end
  end
  local parts = {}
  if wait > 0 then
    -- Rejected: nothing is taken, but a stored state the rules now need longer than its expAtMs (the rules changed:
    -- a longer window, a slower refill) gets the later expAtMs, as rl_keep does for a RateLimiter's key. Left as it
    -- was, it would end at the old rules' time and admit the next jobs early.
    local late = false
    for _, r in ipairs(rules) do
      if r.raw and r.exp > now then
        local _, exp = rl_entry(r, now)
        if exp and exp > r.exp then
          r.raw = string.format('%d', exp) .. string.match(r.raw, '^%d+(.*)$')
          late = true
        end
        parts[#parts + 1] = r.field .. '=' .. r.raw
      end
    end
    if not late then return wait end
  else
    for _, r in ipairs(rules) do
      rl_take(r, 1)
      local value = rl_entry(r, now)
      if value then parts[#parts + 1] = r.field .. '=' .. value end
    end
  end
  -- The states of rules these workers do not know (workers of another configuration during a rolling deploy) are
  -- kept until their own expAtMs, as rl_store keeps them: dropped, a rule just added would not hold.
  for f, raw in pairs(stored) do
    local e = tonumber(string.match(raw, '^%d+')) or 0
    if e > now then parts[#parts + 1] = f .. '=' .. raw end
  end
  if wait > 0 then
    redis.call('HSET', K.groups, field, table.concat(parts, ';'))
    return wait
  end
  if #parts > 0 then
    redis.call('HSET', K.groups, field, table.concat(parts, ';'))
  elseif v then
    redis.call('HDEL', K.groups, field)
  end
  return 0
end
