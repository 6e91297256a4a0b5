-- ratelimit: the four algorithms of @coordis/ratelimit, shared by lua/ratelimit/{consume,consume-batch,peek,refund}.lua.
-- All rules of one rate-limit key keep their state in one string, "<expireAtMs>;<rule>|<alg>=<state>;..." (one entry
-- per rule whose state is not empty), written with one SET: changing a rule's algorithm starts it fresh, changing its
-- limit or window reuses (and clamps) the stored state, and a rule removed from the configuration is dropped by the
-- next write. States: fw "start:count", sw "windowStart:current:previous", tb "tokens:lastMs", gcra "tat" (ms).
-- expireAtMs is the key's expiry as last set (server ms, PXAT): a write that keeps it (a fixed or sliding window counting
-- within its window) uses SET KEEPTTL, which costs Redis about half of SET PXAT.
local RL_EPS = 1e-6       -- tolerance in units (token counts are fractional)
local RL_EPS_MS = 1e-3    -- tolerance in ms for GCRA's fractional theoretical arrival times

-- Parses ARGV "name alg limit windowMs burst;..." (burst 0 = none) into rule tables.
local function rl_rules(spec)
  local rules = {}
  for name, alg, limit, w, burst in string.gmatch(spec, '([^%s;]+) (%a+) (%d+) (%d+) (%d+)') do
    local lim, b = tonumber(limit), tonumber(burst)
    -- Every state field is named here, so rl_load's writes never grow (rehash) the table.
    rules[#rules + 1] = {
      field = name .. '|' .. alg, alg = alg, limit = lim, w = tonumber(w), cap = (b > 0) and b or lim,
      start = 0, count = 0, curr = 0, prev = 0, rate = 0, tokens = 0, t = 0, tau = 0, tat = 0,
    }
  end
  return rules
end

-- Builds rule r's state at server time now (ms) from its stored field value (nil when absent).
local function rl_load(r, raw, now)
  local a, b, c
  if raw then
    local x, y, z = string.match(raw, '^([^:]*):?([^:]*):?([^:]*)')
    a, b, c = tonumber(x), tonumber(y), tonumber(z)
  end
  local limit, w = r.limit, r.w
  if r.alg == 'fw' then
    -- The window opens at the key's first consume and lasts w ms (not aligned to the epoch).
    if a and b and now < a + w then
      r.start, r.count = a, math.min(b, limit)
    else
      r.start, r.count = now, 0
    end
  elseif r.alg == 'sw' then
    local cs = now - (now % w)
    r.start, r.curr, r.prev = cs, 0, 0
    if a and b and c then
      if a == cs then
        r.curr, r.prev = b, c
      elseif a == cs - w then
        r.prev = b
      end
    end
    r.curr, r.prev = math.min(r.curr, limit), math.min(r.prev, limit)
  elseif r.alg == 'tb' then
    r.rate = limit / w -- tokens per ms
    if a and b then
      local elapsed = now - b
      if elapsed < 0 then elapsed = 0 end
      r.tokens = math.min(r.cap, a + elapsed * r.rate)
    else
      r.tokens = r.cap
    end
  else
    -- GCRA: emission interval t, tolerance tau = cap * t (cap calls may arrive at once).
    r.t = w / limit
    r.tau = r.cap * r.t
    local tat = a or now
    if tat < now then tat = now end
    if tat > now + r.tau then tat = now + r.tau end
    r.tat = tat
  end
end

-- 0 when rule r admits cost units now; otherwise the ms after which it would, if nothing else happened.
local function rl_wait(r, cost, now)
  local limit, w = r.limit, r.w
  if r.alg == 'fw' then
    if r.count + cost <= limit then return 0 end
    return r.start + w - now
  elseif r.alg == 'sw' then
    local el = now - r.start
    local room = limit - r.curr - cost -- what the weighted previous window may still use
    if r.prev * (w - el) / w <= room + RL_EPS then return 0 end
    if room >= 0 then
      -- prev > 0 here: wait until prev * (w - el') / w <= room
      return math.max(1, math.ceil(w - room * w / r.prev - el))
    end
    -- Only the next window can admit it; there this window's count is the weighted one.
    local room2 = limit - cost
    local extra = 0
    if r.curr > room2 then extra = math.ceil(w - room2 * w / r.curr) end
    return math.max(1, r.start + w + extra - now)
  elseif r.alg == 'tb' then
    if r.tokens + RL_EPS >= cost then return 0 end
    return math.max(1, math.ceil((cost - r.tokens) / r.rate))
  else
    local allow_at = r.tat + cost * r.t - r.tau
    if now + RL_EPS_MS >= allow_at then return 0 end
    return math.max(1, math.ceil(allow_at - now))
  end
end

-- Takes cost units from rule r (after rl_wait said 0).
local function rl_take(r, cost)
  if r.alg == 'fw' then
    r.count = r.count + cost
  elseif r.alg == 'sw' then
    r.curr = r.curr + cost
  elseif r.alg == 'tb' then
    r.tokens = r.tokens - cost
  else
    r.tat = r.tat + cost * r.t
  end
end

-- Gives cost units back to rule r (never beyond a full rule).
local function rl_give(r, cost, now)
  if r.alg == 'fw' then
    r.count = math.max(0, r.count - cost)
  elseif r.alg == 'sw' then
    local left = cost - r.curr
    r.curr = math.max(0, r.curr - cost)
    if left > 0 then r.prev = math.max(0, r.prev - left) end
  elseif r.alg == 'tb' then
    r.tokens = math.min(r.cap, r.tokens + cost)
  else
    r.tat = math.max(now, r.tat - cost * r.t)
  end
end

-- Remaining units and ms until rule r is full again.
local function rl_info(r, now)
  if r.alg == 'fw' then
    if r.count <= 0 then return r.limit, 0 end
    return r.limit - r.count, r.start + r.w - now
  elseif r.alg == 'sw' then
    local est = r.prev * (r.w - (now - r.start)) / r.w + r.curr
    local remaining = math.max(0, math.floor(r.limit - est + RL_EPS))
    if r.curr > 0 then return remaining, r.start + 2 * r.w - now end
    if r.prev > 0 then return remaining, r.start + r.w - now end
    return remaining, 0
  elseif r.alg == 'tb' then
    local remaining = math.max(0, math.floor(r.tokens + RL_EPS))
    if r.tokens + RL_EPS >= r.cap then return remaining, 0 end
    return remaining, math.ceil((r.cap - r.tokens) / r.rate)
  else
    local remaining = math.floor((now + r.tau - r.tat) / r.t + RL_EPS)
    remaining = math.max(0, math.min(r.cap, remaining))
    return remaining, math.max(0, math.ceil(r.tat - now - RL_EPS_MS))
  end
end

-- Reads the key's stored rule states with one GET: a map field -> state, and the expiry last set (nil when the key
-- does not exist).
local function rl_read(key)
  local v = redis.call('GET', key)
  local stored = {}
  if not v then return stored, nil end
  local expireAt, rest = string.match(v, '^(%d+);(.*)$')
  for f, st in string.gmatch(rest or '', '([^;=]+)=([^;]*)') do stored[f] = st end
  return stored, tonumber(expireAt) or -1
end

-- Writes every rule's state with one SET ... PXAT (or deletes the key when every rule is empty again). The key expires when
-- the last rule's state stops mattering; when that instant is the one already set (expireAt, from rl_read), the
-- SET keeps the TTL instead of setting it again. Integer states (fixed and sliding window) are written with %d,
-- fractional ones (tokens, GCRA's TAT) with %.17g.
local function rl_store(key, rules, now, expireAt)
  local parts, n = {}, 1
  local ttl = 0
  for _, r in ipairs(rules) do
    local value, life
    if r.alg == 'fw' then
      if r.count > 0 then value, life = string.format('%d:%d', r.start, r.count), r.start + r.w - now end
    elseif r.alg == 'sw' then
      if r.curr > 0 then
        value, life = string.format('%d:%d:%d', r.start, r.curr, r.prev), r.start + 2 * r.w - now
      elseif r.prev > 0 then
        -- Only the previous window's weighted count is left (a refund emptied this one): it matters until this
        -- window ends. Dropping it would hand back the whole previous window.
        value, life = string.format('%d:0:%d', r.start, r.prev), r.start + r.w - now
      end
    elseif r.alg == 'tb' then
      if r.tokens + RL_EPS < r.cap then
        value, life = string.format('%.17g:%d', r.tokens, now), math.ceil((r.cap - r.tokens) / r.rate)
      end
    else
      if r.tat > now + RL_EPS_MS then value, life = string.format('%.17g', r.tat), math.ceil(r.tat - now) end
    end
    if value then
      n = n + 1
      parts[n] = r.field .. '=' .. value
      if life > ttl then ttl = life end
    end
  end
  if n > 1 then
    local at = now + math.max(1, ttl)
    parts[1] = string.format('%d', at)
    if at == expireAt then
      redis.call('SET', key, table.concat(parts, ';'), 'KEEPTTL')
    else
      redis.call('SET', key, table.concat(parts, ';'), 'PXAT', at)
    end
  elseif expireAt then
    redis.call('DEL', key)
  end
end

-- Reply: { allowed, nowMs, then per rule: waitMs, remaining, resetMs } (bare: without nowMs).
local function rl_reply(allowed, rules, waits, now, bare)
  local out
  if bare then out = { allowed } else out = { allowed, now } end
  for i, r in ipairs(rules) do
    local remaining, reset = rl_info(r, now)
    out[#out + 1] = waits[i]
    out[#out + 1] = remaining
    out[#out + 1] = reset
  end
  return out
end

-- One consume of cost units on the rate-limit key at server time now: every rule or none. rl_load rewrites every
-- state field of a rule, so one parsed rules table serves several calls in turn (consume-batch).
local function rl_consume(key, cost, rules, now, bare)
  local stored, expireAt = rl_read(key)
  local allowed = 1
  local waits = {}
  for i, r in ipairs(rules) do
    rl_load(r, stored[r.field], now)
    local wait = rl_wait(r, cost, now)
    waits[i] = wait
    if wait > 0 then allowed = 0 end
  end
  if allowed == 1 then
    for _, r in ipairs(rules) do rl_take(r, cost) end
    rl_store(key, rules, now, expireAt)
  end
  return rl_reply(allowed, rules, waits, now, bare)
end
