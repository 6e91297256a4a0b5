-- ratelimit-one: the fast path of lua/ratelimit/{consume,consume-batch}.lua for a key that holds the entries of the
-- call's own rules only (or nothing): one limiter on its keys, the common case. The decision, the writes and the reply
-- are exactly those of rl_consume in lua/_lib/ratelimit.lua (same stored format and entry order, same KEEPTTL / PXAT
-- choice), without rule tables or the library's closures: one function, every rule decided inline (each closure,
-- call and table costs Redis CPU per script run). rl_fast returns nil, having written nothing, whenever the general
-- path must decide: another limiter's entry on the key, an entry that does not parse, a rejected sliding-window rule
-- (its wait is the library's to compute), a rejected call that must move an entry's expiry (a rule changed).
-- One consume of cost units on key at server time now (ms) for the rules in argv from index i (five arguments per
-- rule, as rl_rules_argv reads them; tb/gcra: limit and w in ticks per ms and ticks per unit): rl_consume's reply.
local function rl_fast(key, cost, now, argv, i)
  local v = redis.call('GET', key)
  local len = v and #v or 0
  local several = argv[i + 5] ~= nil
  local allowed, out, n = 1, nil, 1 -- out: the reply (several rules; one rule's is built at the end)
  local after, k -- several rules: remaining and resetMs of each rule after the take, in rule order
  local value -- the new entries, in rule order
  local one -- one rule: waitMs, remaining, resetMs (after the take when admitted)
  local span = -1 -- bytes of v the rules' entries and their separators cover
  local was, at, late = 0, 0, false
  while argv[i + 4] do
    local field, alg, limit, w = argv[i], argv[i + 1], tonumber(argv[i + 2]), tonumber(argv[i + 3])
    local f = #field
    -- The rule's stored entry: "<field>=<e>:<a>:<b>[:<c>]" at byte p, b's digits at at2, the next byte q.
    local p, e, a, at2, b, c, q
    if v then
      if string.byte(v, f + 1) == 61 and string.sub(v, 1, f) == field then -- 61: '='
        p = 1
      elseif several then
        p = string.find(v, ';' .. field .. '=', 1, true)
        if p then p = p + 1 end
      end
      if p then
        if alg == 'fw' then
          e, a, at2, b, q = string.match(v, '^(%d+):(%d+):()(%d+)()', p + f + 1)
        else
          e, a, at2, b, c, q = string.match(v, '^(%d+):(%d+):()(%d+):(%d+)()', p + f + 1)
        end
        if not e or (q <= len and string.byte(v, q) ~= 59) then return nil end -- 59: ';'
        span = span + q - p + 1
        e, a, b = tonumber(e), tonumber(a), tonumber(b)
        if c then c = tonumber(c) end
        if e > was then was = e end
      end
    end
    -- The rule's decision: ok (1 or 0), waitMs, remaining and resetMs of the state as loaded, keep (the expAtMs that
    -- state needs, 0: none; what a rejected call may move the stored entry's expiry to) and, when the rule admits,
    -- remaining2 and reset2 after the take and its new entry with its expAtMs exp (as rl_entry writes it).
    local ok, wait, remaining, reset, keep, remaining2, reset2, entry, exp
    if alg == 'fw' then
      -- The window opens at the key's first consume and lasts w ms.
      local start, count = now, 0
      if e and now < a + w then start, count = a, math.min(b, limit) end
      exp = start + w
      remaining, reset, keep = limit, 0, 0 -- an empty window keeps no entry
      if count > 0 then remaining, reset, keep = limit - count, exp - now, exp end
      if count + cost > limit then
        ok, wait = 0, exp - now
      else
        count = count + cost
        ok, wait, remaining2, reset2 = 1, 0, limit - count, exp - now
        if exp == e and start == a then
          entry = string.sub(v, p, at2 - 1) .. count -- the same window: only the count changes
        else
          entry = field .. string.format('=%d:%d:%d', exp, start, count)
        end
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
      local weighted = prev * (w - (now - cs)) / w
      if weighted > limit - curr - cost + 1e-9 then return nil end
      keep = 0
      if curr > 0 then keep = cs + 2 * w elseif prev > 0 then keep = cs + w end
      remaining, reset = math.max(0, math.floor(limit - (weighted + curr) + 1e-9)), keep > 0 and keep - now or 0
      curr = curr + cost
      exp = cs + 2 * w
      ok, wait, remaining2, reset2 = 1, 0, math.max(0, math.floor(limit - (weighted + curr) + 1e-9)), exp - now
      if exp == e and a == cs and prev == c then
        entry = string.sub(v, p, at2 - 1) .. curr .. ':' .. prev -- the same window: only its count changes
      else
        entry = field .. string.format('=%d:%d:%d:%d', exp, cs, curr, prev)
      end
    else
      -- Token bucket and GCRA in integer ticks: a unit is w ticks, limit ticks refill per ms, capt ticks when full.
      local cap = tonumber(argv[i + 4])
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
      remaining, reset, keep = cap, 0, 0
      if level < capt then
        local short = capt - level
        reset = math.floor(short / limit)
        if reset * limit < short then reset = reset + 1 end
        remaining, keep = math.floor(level / w), now + reset
      end
      local need = cost * w - level
      if need > 0 then
        wait = math.floor(need / limit)
        if wait * limit < need then wait = wait + 1 end
        ok = 0
      else
        level = level - cost * w
        local short = capt - level
        reset2 = math.floor(short / limit)
        if reset2 * limit < short then reset2 = reset2 + 1 end
        exp = now + reset2
        ok, wait, remaining2 = 1, 0, math.floor(level / w)
        entry = field .. string.format('=%d:%d:%d:%d', exp, now, level, w)
      end
    end
    if ok == 0 then allowed = 0 end
    if e and keep > e then late = true end
    if not several then
      if ok == 1 then remaining, reset = remaining2, reset2 end
      one = { ok, wait, remaining, reset }
      value, at = entry, exp
    else
      if not out then out, after, k = { 1 }, {}, 0 end
      out[n + 1], out[n + 2], out[n + 3] = wait, remaining, reset
      if ok == 1 then
        value = value and value .. ';' .. entry or entry
        after[k + 1], after[k + 2] = remaining2, reset2
        k = k + 2
        if exp > at then at = exp end
      end
    end
    n = n + 3
    i = i + 5
  end
  if v and span ~= len then return nil end -- the key holds another limiter's entries too
  if allowed == 0 then
    -- Rejected: nothing is written, unless a stored state now needs its entry longer (a rule changed), which the
    -- general path does (rl_keep).
    if late then return nil end
    if several then out[1] = 0 end
    return one or out
  end
  if at == was then
    redis.call('SET', key, value, 'KEEPTTL')
  else
    redis.call('SET', key, value, 'PXAT', string.format('%d', at))
  end
  if not several then return one end
  for r = 0, k / 2 - 1 do out[3 * r + 3], out[3 * r + 4] = after[2 * r + 1], after[2 * r + 2] end
  return out
end
