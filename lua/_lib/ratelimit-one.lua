-- ratelimit-one: the fast path of lua/ratelimit/{consume,consume-batch}.lua for a key that holds the entries of the
-- call's own rules only (or nothing): one limiter on its keys, the common case. The decision, the writes and the reply
-- are exactly those of rl_consume in lua/_lib/ratelimit.lua (same stored format and entry order, same KEEPTTL / PXAT
-- choice, a rejected call moves only entries' expiries forward), without rule tables or the library's closures (each
-- costs Redis CPU per call). rl_fast returns nil, having written nothing, whenever the general path must decide:
-- another limiter's entry on the key, an entry that does not parse, a rejected sliding-window rule (its wait is the
-- library's to compute).

-- One rule at server time now (ms) from its stored entry (e = nil: none). Returns allowed (1 or 0; nil: leave it to
-- the general path), waitMs, then remaining and resetMs of the state as loaded, keep (the expAtMs that state needs,
-- 0: none; what a rejected call may move a stored entry's expiry to) and, when the rule admits the call, remaining
-- and resetMs after the take and the rule's new entry "<field>=<expAtMs>:<state>" with its expAtMs (as rl_entry
-- writes it). Counting on within the same window rewrites only the count in the stored bytes v[p .. at2 - 1].
-- limit and w as in rl_rules_argv (tb/gcra: ticks per ms and ticks per unit); cap in units.
local function rl_rule(field, alg, limit, w, cap, cost, now, v, p, e, a, at2, b, c)
  if alg == 'fw' then
    -- The window opens at the key's first consume and lasts w ms.
    local start, count = now, 0
    if e and now < a + w then start, count = a, math.min(b, limit) end
    local at = start + w
    if count + cost > limit then
      if count <= 0 then return 0, at - now, limit, 0, 0 end -- an empty window keeps no entry
      return 0, at - now, limit - count, at - now, at
    end
    local remaining, reset, keep = limit, 0, 0
    if count > 0 then remaining, reset, keep = limit - count, at - now, at end
    count = count + cost
    local entry
    if at == e and start == a then
      entry = string.sub(v, p, at2 - 1) .. count -- the same window: only the count changes
    else
      entry = field .. string.format('=%d:%d:%d', at, start, count)
    end
    return 1, 0, remaining, reset, keep, limit - count, at - now, entry, at
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
    local weighted = prev * (w - (now - cs)) / w
    if weighted > limit - curr - cost + 1e-9 then return nil end
    local keep = 0
    if curr > 0 then keep = cs + 2 * w elseif prev > 0 then keep = cs + w end
    local remaining = math.max(0, math.floor(limit - (weighted + curr) + 1e-9))
    curr = curr + cost
    local at = cs + 2 * w
    local entry
    if at == e and a == cs and prev == c then
      entry = string.sub(v, p, at2 - 1) .. curr .. ':' .. prev -- the same window: only its count changes
    else
      entry = field .. string.format('=%d:%d:%d:%d', at, cs, curr, prev)
    end
    local reset = keep > 0 and keep - now or 0
    return 1, 0, remaining, reset, keep, math.max(0, math.floor(limit - (weighted + curr) + 1e-9)), at - now, entry, at
  end
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
  local remaining, keep = cap, 0
  if level < capt then
    local short = capt - level
    keep = math.floor(short / limit)
    if keep * limit < short then keep = keep + 1 end
    keep = now + keep
    remaining = math.floor(level / w)
  end
  local need = cost * w - level
  if need > 0 then
    local wait = math.floor(need / limit)
    if wait * limit < need then wait = wait + 1 end
    return 0, wait, remaining, keep > 0 and keep - now or 0, keep
  end
  level = level - cost * w
  local short = capt - level
  local reset = math.floor(short / limit)
  if reset * limit < short then reset = reset + 1 end
  local at = now + reset
  return 1, 0, remaining, keep > 0 and keep - now or 0, keep, math.floor(level / w), reset,
    field .. string.format('=%d:%d:%d:%d', at, now, level, w), at
end

-- The entry of a rule of algorithm alg that starts at byte p of v, "=" at p + f: its expAtMs e, state a, b (and c
-- but for fw) as numbers, where b's digits start (at2) and the first byte after the entry (q); nil when it does not
-- parse or is not followed by the end of v or a ';'.
local function rl_parse_at(v, p, f, alg)
  local e, a, at2, b, c, q
  if alg == 'fw' then
    e, a, at2, b, q = string.match(v, '^(%d+):(%d+):()(%d+)()', p + f + 1)
  else
    e, a, at2, b, c, q = string.match(v, '^(%d+):(%d+):()(%d+):(%d+)()', p + f + 1)
  end
  if not e or (q <= #v and string.byte(v, q) ~= 59) then return nil end -- 59: ';'
  if c then c = tonumber(c) end
  return tonumber(e), tonumber(a), at2, tonumber(b), c, q
end

-- One consume of cost units on key at server time now for the rules in argv from index i (five arguments per rule,
-- as rl_rules_argv reads them): the reply of rl_consume, or nil (nothing written) when the general path must decide.
local function rl_fast(key, cost, now, argv, i)
  local v = redis.call('GET', key)
  if not argv[i + 5] then
    -- One rule (the common case), without the bookkeeping of several.
    local field, alg = argv[i], argv[i + 1]
    local f = #field
    local e, a, at2, b, c, q
    if v then
      if string.byte(v, f + 1) ~= 61 or string.sub(v, 1, f) ~= field then return nil end -- 61: '='
      e, a, at2, b, c, q = rl_parse_at(v, 1, f, alg)
      if not q or q <= #v then return nil end
    end
    local ok, wait, remaining, reset, keep, remaining2, reset2, entry, exp =
      rl_rule(field, alg, tonumber(argv[i + 2]), tonumber(argv[i + 3]), tonumber(argv[i + 4]), cost, now, v, 1, e, a,
        at2, b, c)
    if not ok then return nil end
    if ok == 1 then
      if exp == e then
        redis.call('SET', key, entry, 'KEEPTTL')
      else
        redis.call('SET', key, entry, 'PXAT', string.format('%d', exp))
      end
      return { 1, 0, remaining2, reset2 }
    end
    if e and keep > e then
      -- Rejected, and the state now needs its entry longer (the rule changed): only the expiry moves forward.
      local x = string.find(v, ':', f + 1, true)
      redis.call('SET', key, string.sub(v, 1, f + 1) .. string.format('%d', keep) .. string.sub(v, x), 'PXAT',
        string.format('%d', keep))
    end
    return { 0, wait, remaining, reset }
  end
  local len = v and #v or 0
  local out, n = { 1 }, 1
  local after, new, nn = {}, {}, 0 -- per admitting rule: remaining and resetMs after the take; the new entries
  local st, ns = {}, 0 -- per stored entry: its first and last byte, its '=' and expAtMs, keep
  local span = -1 -- bytes of v the rules' entries and their separators cover
  local was, at, late = 0, 0, false
  while argv[i + 4] do
    local field, alg = argv[i], argv[i + 1]
    local f = #field
    local p, e, a, at2, b, c, q
    if v then
      if string.byte(v, f + 1) == 61 and string.sub(v, 1, f) == field then -- 61: '='
        p = 1
      else
        p = string.find(v, ';' .. field .. '=', 1, true)
        if p then p = p + 1 end
      end
      if p then
        e, a, at2, b, c, q = rl_parse_at(v, p, f, alg)
        if not e then return nil end
        span = span + q - p + 1
        if e > was then was = e end
      end
    end
    local ok, wait, remaining, reset, keep, remaining2, reset2, entry, exp =
      rl_rule(field, alg, tonumber(argv[i + 2]), tonumber(argv[i + 3]), tonumber(argv[i + 4]), cost, now, v, p, e, a,
        at2, b, c)
    if not ok then return nil end
    if ok == 0 then out[1] = 0 end
    if entry then
      nn = nn + 1
      new[nn] = entry
      after[n + 2], after[n + 3] = remaining2, reset2
      if exp > at then at = exp end
    end
    if e then
      st[ns + 1], st[ns + 2], st[ns + 3], st[ns + 4], st[ns + 5] = p, q - 1, p + f, e, keep
      ns = ns + 5
      if keep > e then late = true end
    end
    out[n + 1], out[n + 2], out[n + 3] = wait, remaining, reset
    n = n + 3
    i = i + 5
  end
  if v and span ~= len then return nil end -- the key holds another limiter's entries too
  if out[1] == 1 then
    for j = 3, n, 3 do out[j], out[j + 1] = after[j], after[j + 1] end
    local value = nn == 1 and new[1] or table.concat(new, ';')
    if at == was then
      redis.call('SET', key, value, 'KEEPTTL')
    else
      redis.call('SET', key, value, 'PXAT', string.format('%d', at))
    end
  elseif late then
    -- Rejected, and a stored state now needs its entry longer (the rule changed): those expiries move forward, the
    -- states are kept byte for byte; the key expires with the latest entry.
    local parts, last = {}, 0
    for j = 1, ns, 5 do
      local p, q, eq, e, keep = st[j], st[j + 1], st[j + 2], st[j + 3], st[j + 4]
      if keep > e then
        local x = string.find(v, ':', eq, true)
        parts[#parts + 1] = string.sub(v, p, eq) .. string.format('%d', keep) .. string.sub(v, x, q)
        e = keep
      else
        parts[#parts + 1] = string.sub(v, p, q)
      end
      if e > last then last = e end
    end
    redis.call('SET', key, table.concat(parts, ';'), 'PXAT', string.format('%d', last))
  end
  return out
end
