-- ratelimit: the four algorithms of @coordis/ratelimit, shared by lua/ratelimit/{consume,consume-batch,peek,refund,reset}.lua and
-- the queue's per-group rate limits.
-- All rules of one rate-limit key keep their state in one string, "<rule>|<alg>=<expAtMs>:<state>;..." (one entry per
-- rule whose state is not empty), written with one SET. expAtMs is when the entry stops mattering (server ms); the
-- key expires (PXAT) at the latest entry's expAtMs. Changing a rule's algorithm starts it fresh, changing its limit or
-- window reuses (and clamps) the stored state. A write keeps the entries of rules it does not know (another limiter
-- on the same key, another version of the configuration) until their own expAtMs. States: fw "start:count",
-- sw "windowStart:current:previous", tb and gcra "lastMs:level:unit" (integers).
-- Numbers are written with %d (64-bit integers in Redis' Lua), never in exponent form.
-- Token bucket and GCRA are one algorithm in two notations; both count in integer ticks: a unit (token) is `unit`
-- ticks and `perMs` ticks refill per ms, where unit = windowMs / g and perMs = limit / g (g = gcd, sent reduced by the
-- client), so every comparison is exact. level = ticks available at lastMs (GCRA: tau - (TAT - lastMs) in ticks).
-- A write whose expiry equals the key's current one (a fixed or sliding window counting within its window) uses
-- SET KEEPTTL, which costs Redis about half of SET PXAT.

-- Parses the rule spec "name alg limit windowMs cap;..." into rule tables (peek, refund, reset, the queue's group
-- rules). tb and gcra come with limit and windowMs reduced by their gcd, so limit = ticks per ms and w = ticks per
-- unit. Every state field is named here, so rl_load's writes never grow (rehash) the table.
local function rl_rules(spec)
  local rules = {}
  for name, alg, limit, w, cap in string.gmatch(spec, '([^%s;]+) (%a+) (%d+) (%d+) (%d+)') do
    local c, win = tonumber(cap), tonumber(w)
    rules[#rules + 1] = {
      field = name .. '|' .. alg, bucket = (alg == 'tb' or alg == 'gcra'), alg = alg, limit = tonumber(limit),
      w = win, cap = c, capt = c * win, start = 0, count = 0, curr = 0, prev = 0, level = 0, last = 0, exp = 0, raw = false,
    }
  end
  return rules
end

-- The same rule tables from ARGV (consume, consume-batch), from index i to the end, per rule: "<name>|<alg>", then
-- fixed window: limit, windowMs; sliding window: limit, -windowMs; token bucket and GCRA: -limit, windowMs (both
-- divided by their gcd), capacity. The signs tell the algorithms apart (no string work on the hot path).
local function rl_rules_argv(argv, i)
  local rules, n = {}, 0
  while argv[i] do
    local field, limit, win = argv[i], argv[i + 1] + 0, argv[i + 2] + 0
    local alg, c, bucket = 'fw', limit, false
    if limit < 0 then
      limit, c, bucket = -limit, argv[i + 3] + 0, true
      alg = string.match(field, '|(%a+)$')
      i = i + 4
    else
      if win < 0 then alg, win = 'sw', -win end
      i = i + 3
    end
    n = n + 1
    rules[n] = {
      field = field, bucket = bucket, alg = alg, limit = limit,
      w = win, cap = c, capt = c * win, start = 0, count = 0, curr = 0, prev = 0, level = 0, last = 0, exp = 0, raw = false,
    }
  end
  return rules
end

-- Builds rule r's state at server time now (ms) from its stored entry (nil when absent), and takes the entry out
-- of `stored` (what is left there afterwards belongs to rules this call does not know).
local function rl_load(r, stored, now)
  local raw = stored[r.field]
  local a, b, c
  if raw then
    stored[r.field] = nil
    local e, x, y, z
    if r.alg == 'fw' then
      e, x, y = string.match(raw, '^(%d+):(%d+):(%d+)')
    else
      e, x, y, z = string.match(raw, '^(%d+):(%d+):(%d+):(%d+)')
      c = tonumber(z)
    end
    a, b = tonumber(x), tonumber(y)
    r.exp, r.raw = tonumber(e) or 0, raw
    -- Expired (another entry, or another limiter's, kept the key alive): the state is gone, whatever the rule now.
    if r.exp <= now then a, b, c = nil, nil, nil end
  else
    r.exp, r.raw = 0, false
  end
  local limit, w = r.limit, r.w
  if r.bucket then
    local capt = r.capt
    local level, last = capt, now
    if c and c > 0 then
      level = b
      if c ~= w then level = math.floor(b / c * w) end -- stored in another rule's ticks (its rate changed)
      local gain = (now - a) * limit
      if gain > 0 then
        if gain >= capt - level then level = capt else level = level + gain end
      elseif gain < 0 then
        -- Redis' clock went back (see the sliding window below): the level is the one at the stored, later instant,
        -- and stays as of that instant (waits, resets and the entry written count from it): once the clock is back
        -- there, the time it went back is not refilled a second time.
        last = a
      end
      if level > capt then level = capt end
    end
    r.level, r.last = level, last
  elseif r.alg == 'fw' then
    -- The window opens at the key's first consume and lasts w ms (not aligned to the epoch).
    -- A count above the limit (a lowered limit) counts as full, and is kept as it is (see the sliding window below).
    if b and now < a + w then
      r.start, r.count = a, b
    else
      r.start, r.count = now, 0
    end
  else
    local cs = now - (now % w)
    -- A stored window that starts after now (a window starts before it is written): Redis' clock went back (a
    -- failover to a replica whose clock is behind, a step of the host's clock). That window stays the current one
    -- until the clock is back in it. (After a change of windowMs the stored start is never after now.)
    if c and a > now then cs = a end
    r.start, r.curr, r.prev = cs, 0, 0
    if c then
      if a == cs then
        r.curr, r.prev = b, c
      elseif a == cs - w then
        r.prev = b
      end
    end
    -- Counts above the limit (a lowered limit) are decided on as the limit (rl_wait, rl_reply) but kept as they are:
    -- cut down in what is written (a refund, a previous window written again), they would let the higher figures of
    -- an old replica, or of the rule once the change is rolled back, admit again units that were never given back.
  end
end

-- 0 when rule r admits cost units now; otherwise the ms after which it would, if nothing else happened.
-- (ceil(x / y) of integers is written out inline here and below: a helper function costs a closure per call.)
local function rl_wait(r, cost, now)
  local limit, w = r.limit, r.w
  if r.bucket then
    local need = cost * w - r.level
    if need <= 0 then return 0 end
    local q = math.floor(need / limit)
    if q * limit < need then q = q + 1 end
    return r.last - now + q -- counted from the state's instant (later than now when the clock went back)
  elseif r.alg == 'fw' then
    if r.count + cost <= limit then return 0 end
    return r.start + w - now
  else
    local el = now - r.start
    local curr, prev = r.curr, r.prev
    if curr > limit then curr = limit end -- counts above a lowered limit weigh as the limit (see rl_load)
    if prev > limit then prev = limit end
    local room = limit - curr - cost -- what the weighted previous window may still use
    -- prev * (w - el) / w <= room, compared in integers (the remaining of rl_reply too): a tolerance in units would be
    -- one in time of tolerance * w / prev ms, which with windows of weeks let a call pass before the retryAfterMs the
    -- formula below announces.
    if prev * (w - el) <= room * w then return 0 end
    if room >= 0 then
      -- prev > 0 here: wait until prev * (w - el') / w <= room
      return math.max(1, math.ceil(w - room * w / prev - el))
    end
    -- Only the next window can admit it; there this window's count is the weighted one.
    local room2 = limit - cost
    local extra = 0
    if curr > room2 then extra = math.ceil(w - room2 * w / curr) end
    return math.max(1, r.start + w + extra - now)
  end
end

-- Takes cost units from rule r (after rl_wait said 0).
local function rl_take(r, cost)
  if r.bucket then
    r.level = r.level - cost * r.w
  elseif r.alg == 'fw' then
    r.count = r.count + cost
  else
    r.curr = r.curr + cost
  end
end

-- Rule r's state as stored ("<expAtMs>:<state>") and its expAtMs, or nil when the rule is full (nothing to keep).
local function rl_entry(r, now)
  if r.bucket then
    local level = r.level
    local capt = r.capt
    if level < capt then
      local need, limit, last = capt - level, r.limit, r.last
      local q = math.floor(need / limit)
      if q * limit < need then q = q + 1 end
      local at = last + q
      return string.format('%d:%d:%d:%d', at, last, level, r.w), at
    end
  elseif r.alg == 'fw' then
    if r.count > 0 then
      local at = r.start + r.w
      return string.format('%d:%d:%d', at, r.start, r.count), at
    end
  elseif r.curr > 0 then
    local at = r.start + 2 * r.w
    return string.format('%d:%d:%d:%d', at, r.start, r.curr, r.prev), at
  elseif r.prev > 0 then
    -- Only the previous window's weighted count is left (a refund emptied this one): it matters until this
    -- window ends. Dropping it would hand back the whole previous window.
    local at = r.start + r.w
    return string.format('%d:%d:0:%d', at, r.start, r.prev), at
  end
  return nil
end

-- The stored entries of a key's value (nil: no key) as a map field -> "<expAtMs>:<state>". A value of one entry
-- (one limiter of one rule on the key, the common case) is split without pattern matching.
local function rl_parse(v)
  if not v then return nil end
  local stored = {}
  if not string.find(v, ';', 1, true) then
    local eq = string.find(v, '=', 1, true)
    if eq then stored[string.sub(v, 1, eq - 1)] = string.sub(v, eq + 1) end
    return stored
  end
  for f, st in string.gmatch(v, '([^;=]+)=([^;]*)') do stored[f] = st end
  return stored
end

-- Reads the key's stored entries with one GET (see rl_parse).
local function rl_read(key)
  return rl_parse(redis.call('GET', key))
end

-- Writes every rule's state and the entries of rules this call does not know (left in `stored` by rl_load), those
-- until their own expiry, with one SET; deletes the key when nothing is left. The key expires with its latest
-- entry; when that is the instant already set (the latest expAtMs read), the SET keeps the TTL (never when `moved`:
-- the caller dropped entries itself).
local function rl_store(key, rules, now, stored, moved)
  local parts, n = {}, 0
  local at, was = 0, 0
  for i = 1, #rules do
    local r = rules[i]
    if r.exp > was then was = r.exp end
    local value, exp = rl_entry(r, now)
    if value then
      n = n + 1
      parts[n] = r.field .. '=' .. value
      if exp > at then at = exp end
    end
  end
  if stored and next(stored) then
    for f, raw in pairs(stored) do
      local e = tonumber(string.match(raw, '^%d+')) or 0
      if e > was then was = e end
      if e > now then
        n = n + 1
        parts[n] = f .. '=' .. raw
        if e > at then at = e end
      end
    end
  end
  if n > 0 then
    local value = n == 1 and parts[1] or table.concat(parts, ';')
    if at == was and not moved then
      redis.call('SET', key, value, 'KEEPTTL')
    else
      redis.call('SET', key, value, 'PXAT', string.format('%d', at))
    end
  elseif stored then
    redis.call('DEL', key)
  end
end

-- After a rejected call (which writes no state): when the current rules need a stored entry longer than its
-- expAtMs (the rules changed since it was written: a longer window, a slower refill), moves that entry's expAtMs
-- and the key's expiry forward. The states themselves are kept byte for byte. Otherwise writes nothing.
local function rl_keep(key, rules, now, stored)
  local late = false
  for _, r in ipairs(rules) do
    if r.raw then
      local _, exp = rl_entry(r, now)
      if exp and exp > r.exp then
        r.raw = string.format('%d', exp) .. string.match(r.raw, '^%d+(.*)$')
        late = true
      end
    end
  end
  if not late then return end
  local parts, n, at = {}, 0, 0
  for _, r in ipairs(rules) do
    if r.raw then
      n = n + 1
      parts[n] = r.field .. '=' .. r.raw
      local e = tonumber(string.match(r.raw, '^%d+'))
      if e > at then at = e end
    end
  end
  for f, raw in pairs(stored) do
    local e = tonumber(string.match(raw, '^%d+')) or 0
    if e > now then
      n = n + 1
      parts[n] = f .. '=' .. raw
      if e > at then at = e end
    end
  end
  redis.call('SET', key, table.concat(parts, ';'), 'PXAT', string.format('%d', at))
end

-- Reply: { allowed, then per rule: waitMs, remaining, resetMs }: remaining units and ms until the rule is full
-- again.
local function rl_reply(allowed, rules, waits, now)
  local out, n = { allowed }, 1
  for i = 1, #rules do
    local r = rules[i]
    local limit, w = r.limit, r.w
    local remaining, reset
    if r.bucket then
      local level, capt = r.level, r.capt
      if level >= capt then
        remaining, reset = r.cap, 0
      else
        remaining = math.floor(level / w)
        local need = capt - level
        reset = math.floor(need / limit)
        if reset * limit < need then reset = reset + 1 end
        reset = r.last - now + reset
      end
    elseif r.alg == 'fw' then
      if r.count <= 0 then
        remaining, reset = limit, 0
      else
        remaining, reset = math.max(0, limit - r.count), r.start + w - now
      end
    else
      -- floor(limit - (prev * (w - elapsed) / w + curr)), in integers as the decision (rl_wait)
      local curr, prev = math.min(r.curr, limit), math.min(r.prev, limit) -- see rl_wait
      local x = ((limit - curr) * w - prev * (w - (now - r.start))) / w
      remaining, reset = math.max(0, math.floor(x)), 0
      if r.curr > 0 then
        reset = r.start + 2 * w - now
      elseif r.prev > 0 then
        reset = r.start + w - now
      end
    end
    out[n + 1], out[n + 2], out[n + 3] = waits[i], remaining, reset
    n = n + 3
  end
  return out
end

-- One consume of cost units on the rate-limit key at server time now: every rule or none. rl_load rewrites every
-- state field of a rule, so one parsed rules table serves several calls in turn (consume-batch).
local function rl_consume(key, cost, rules, now)
  local stored = rl_read(key)
  local from = stored or {}
  local allowed = 1
  local waits = {}
  local n = #rules
  for i = 1, n do
    local r = rules[i]
    rl_load(r, from, now)
    local wait = rl_wait(r, cost, now)
    waits[i] = wait
    if wait > 0 then allowed = 0 end
  end
  if allowed == 1 then
    for i = 1, n do rl_take(rules[i], cost) end
    rl_store(key, rules, now, stored)
  elseif stored then
    rl_keep(key, rules, now, stored)
  end
  return rl_reply(allowed, rules, waits, now)
end
