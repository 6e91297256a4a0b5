-- ratelimit-one: the fast path of lua/ratelimit/{consume,consume-batch}.lua for one rule on a key that holds only
-- that rule's entry (or nothing): one limiter of one rule, the common case. The decision, the writes and the reply
-- are exactly those of rl_consume in lua/_lib/ratelimit.lua (same stored format, same KEEPTTL / PXAT choice, a
-- rejected call moves only an entry's expiry forward), without rule tables or the library's closures (each costs
-- Redis CPU per call). Returns nil, having written nothing, whenever the general path must decide: another entry on
-- the key, an entry that does not parse, a rejected sliding-window call (its wait is the library's to compute).
-- field is "<name>|<alg>"; limit and w as in rl_rules_argv (tb/gcra: ticks per ms and ticks per unit); cap units.
-- now is the server time in ms (TIME). Counting on within the same window rewrites only the count in the stored
-- bytes (no formatting of the instants).
local function rl_one(key, cost, now, field, alg, limit, w, cap)
  local v = redis.call('GET', key)
  local e, a, b, c, at2
  if v then
    local n = #field
    if string.byte(v, n + 1) ~= 61 or string.sub(v, 1, n) ~= field then return nil end -- 61: '='
    if alg == 'fw' then
      e, a, at2, b = string.match(v, '^(%d+):(%d+):()(%d+)$', n + 2)
    else
      e, a, at2, b, c = string.match(v, '^(%d+):(%d+):()(%d+):(%d+)$', n + 2)
    end
    if not e then return nil end
    e, a, b = tonumber(e), tonumber(a), tonumber(b)
    if c then c = tonumber(c) end
  end
  local value, at, allowed, wait, remaining, reset
  if alg == 'fw' then
    -- The window opens at the key's first consume and lasts w ms.
    local start, count = now, 0
    if e and now < a + w then start, count = a, math.min(b, limit) end
    at = start + w
    if count + cost <= limit then
      count = count + cost
      allowed, wait, remaining, reset = 1, 0, limit - count, at - now
      if at == e and start == a then
        value = string.sub(v, 1, at2 - 1) .. count -- the same window: only the count changes
      else
        value = field .. string.format('=%d:%d:%d', at, start, count)
      end
    else
      allowed, wait, remaining, reset = 0, at - now, limit - count, at - now
      if count <= 0 then remaining, reset, at = limit, 0, 0 end -- an empty window keeps no entry
    end
  elseif alg == 'sw' then
    -- Two epoch-aligned windows; the previous one weighted by how much of it still overlaps.
    local cs = now - (now % w)
    local curr, prev = 0, 0
    if e then
      if a == cs then
        curr, prev = b, c
      elseif a == cs - w then
        prev = b
      end
      curr, prev = math.min(curr, limit), math.min(prev, limit)
    end
    local room = limit - curr - cost
    if prev * (w - (now - cs)) / w > room + 1e-9 then return nil end
    curr = curr + cost
    at = cs + 2 * w
    local est = prev * (w - (now - cs)) / w + curr
    allowed, wait, reset = 1, 0, at - now
    remaining = math.max(0, math.floor(limit - est + 1e-9))
    if at == e and a == cs and prev == c then
      value = string.sub(v, 1, at2 - 1) .. curr .. ':' .. prev -- the same window: only its count changes
    else
      value = field .. string.format('=%d:%d:%d:%d', at, cs, curr, prev)
    end
  else
    -- Token bucket and GCRA in integer ticks: a unit is w ticks, limit ticks refill per ms, capt ticks when full.
    local capt = cap * w
    local level = capt
    if c and c > 0 then
      level = b
      if c ~= w then level = math.floor(b / c * w) end -- stored in another rule's ticks (its rate changed)
      local gain = (now - a) * limit
      if gain > 0 then
        if gain >= capt - level then level = capt else level = level + gain end
      end
      if level > capt then level = capt end
    end
    local need = cost * w - level
    if need <= 0 then
      level = level - cost * w
      allowed, wait = 1, 0
    else
      wait = math.floor(need / limit)
      if wait * limit < need then wait = wait + 1 end
      allowed = 0
    end
    if level >= capt then
      remaining, reset, at = cap, 0, 0
    else
      remaining = math.floor(level / w)
      local short = capt - level
      reset = math.floor(short / limit)
      if reset * limit < short then reset = reset + 1 end
      at = now + reset
      if allowed == 1 then value = field .. string.format('=%d:%d:%d:%d', at, now, level, w) end
    end
  end
  if allowed == 1 then
    if at == e then
      redis.call('SET', key, value, 'KEEPTTL')
    else
      redis.call('SET', key, value, 'PXAT', string.format('%d', at))
    end
  elseif e and at > e then
    -- Rejected: only the entry's expiry moves forward (the rule now needs it longer); the state is kept as stored.
    local kept = string.match(v, '^%d+(.*)$', #field + 2)
    redis.call('SET', key, field .. string.format('=%d', at) .. kept, 'PXAT', string.format('%d', at))
  end
  return { allowed, wait, remaining, reset }
end
