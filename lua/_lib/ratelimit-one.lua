-- ratelimit-one: the fast path of lua/ratelimit/{consume,consume-batch}.lua for a key that holds the entries of the
-- call's own rules only (or nothing): one limiter on its keys, the common case. The decision and the writes are
-- exactly those of rl_consume in lua/_lib/ratelimit.lua (same stored format and entry order, same KEEPTTL / PXAT
-- choice), without rule tables or the library's closures. rl_fast returns nil, having written nothing, whenever the
-- general path must decide: another limiter's entry on the key, an entry that does not parse, a rejected
-- sliding-window rule (its wait is the library's to compute), a rejected call that must move an entry's expiry (a
-- rule changed).
-- Costs inside Redis drive the shape (callgrind): a number turned into text by `..` (Lua's %.14g) costs about 3k
-- instructions, string.format('%d') about a third of that, a stored digit string reused costs nothing; a reply
-- table costs about 5k more than one integer; math.floor is a global lookup and a C call where x - x % 1 is two VM
-- operations (the same value). A new entry's expAtMs, the PXAT of its SET, is cut from the entry's text (13 digits
-- from 2001-09-09 to 2286-11-20), which costs a third of formatting it again (a bucket's entry is built the other way
-- round: its expAtMs formatted alone, the rest concatenated to it; a string.format's '%s' copies byte by byte).
-- Rules come as rl_rules_argv reads them (lua/_lib/ratelimit.lua): "<name>|<alg>", limit, windowMs per rule, a
-- sliding window with -windowMs, token bucket and GCRA with -limit (ticks per ms), windowMs (ticks per unit) and a
-- fourth argument, the capacity; in argv from index i, the first rule also as field, limit, w (numbers or digit
-- text), cap (a bucket's capacity) and wt (w as text, what a bucket's entry ends with). argv is nil for a limiter's
-- own script of one rule (packages/ratelimit/src/specialised.ts: the rule's values are constants there, no table is
-- built per call); full, given there for a bucket, is the text a full bucket's entry ends with after one unit is
-- taken, "<level>:<wt>" (the usual write of a key seen now and then: no level to format).
-- Reply: one rule admitted packs its remaining and resetMs into one integer, resetMs * (capacity + 1) + remaining
-- (below 2^53, else the full reply); a fixed-window rejection of one rule replies -1 - (resetMs * (limit + 1) +
-- remaining) (its wait is its resetMs). Several rules admitted reply one string, "<s>:<us>;<value>": TIME's two
-- fields (now is s * 1000 + us // 1000) and the value written, from which the client reads each rule's remaining
-- and resetMs after the take exactly as computed here (fixed window: limit - count, expAtMs - now; sliding window:
-- floor(((limit - curr) * w - min(prev, limit) * (w - (now - start))) / w) at least 0, expAtMs - now; token bucket
-- and GCRA: floor(level / ticks per unit), lastMs - now + ceil((capacity ticks - level) / ticks per ms), not
-- expAtMs - now, which a double rounds past 2^53; lastMs is now unless Redis' clock went back); a string costs less
-- than a table of integers and needs no number formatted besides the entries'. Every other reply is rl_consume's,
-- {allowed, per rule: waitMs, remaining, resetMs}. time: the TIME reply now was computed from. With several rules,
-- full is the key's value when the caller has read it already (false: no key; a limiter's own copy,
-- lua/_lib/ratelimit-own.lua), nil otherwise.
local function rl_fast(key, cost, now, time, argv, i, field, limit, w, cap, wt, full)
  limit, w = limit + 0, w + 0
  local head, f, e, a, b, c
  if not argv or argv[limit < 0 and i + 4 or i + 3] == nil then
    local v = redis.call('GET', key)
    -- One rule: its entry, "<field>=<e>:<a>:<b>[:<c>]", must be the whole value; head is the entry up to b.
    if limit > 0 and w > 0 then
      -- Fixed window: it opens at the key's first consume and lasts w ms.
      if v then
        head, f, e, a, b = string.match(v, '^(([^=;]*)=(%d+):(%d+):)(%d+)$')
        if f ~= field then return nil end
        e, a = e + 0, a + 0
        -- Expired (a rule change made it outlive its window by the key's last millisecond): gone, as in rl_load.
        if e <= now then e = nil end
      end
      local start, count = now, 0
      if e and now < a + w then
        start, count = a, b + 0
        if count > limit then count = limit end
      end
      local exp = start + w
      local reset = exp - now
      if count + cost > limit then
        -- Rejected: nothing is written unless the entry must now live longer (a rule changed): the general path's.
        if count == 0 or exp > e then return nil end
        local n = reset * (limit + 1) + limit - count
        if n < 9007199254740992 then return -1 - n end
        return { 0, reset, limit - count, reset }
      end
      count = count + cost
      if exp ~= e then
        v = string.format('%s=%d:%d:%d', field, exp, start, count)
        local px = exp >= 1e12 and exp < 1e13 and string.sub(v, #field + 2, #field + 14) or string.format('%d', exp)
        redis.call('SET', key, v, 'PXAT', px)
      elseif start == a then
        redis.call('SET', key, head .. string.format('%d', count), 'KEEPTTL') -- the same window: only the count changes
      else
        redis.call('SET', key, string.format('%s=%d:%d:%d', field, exp, start, count), 'KEEPTTL')
      end
      local n = reset * (limit + 1) + limit - count
      if n < 9007199254740992 then return n end
      return { 1, 0, limit - count, reset }
    end
    if limit > 0 then
      -- Sliding window: two epoch-aligned windows; the previous one weighted by how much of it still overlaps.
      if v then
        head, f, e, a, b, c = string.match(v, '^(([^=;]*)=(%d+):(%d+):)(%d+):(%d+)$')
        if f ~= field then return nil end
        e = e + 0
        if e <= now then e = nil end -- expired (see the fixed window above)
      end
      w = -w
      local cs = now - now % w
      local curr, prev, cn = 0, 0, nil
      if e then
        a = a + 0
        if a > now then cs = a end -- Redis' clock went back: the stored window stays current (see rl_load)
        if a == cs then
          cn = c + 0
          curr, prev = b + 0, cn
        elseif a == cs - w then
          prev = b + 0
        end
        if curr > limit then curr = limit end
      end
      -- prev * (w - elapsed) / w <= limit - curr - cost, and remaining, in integers (see rl_wait); a previous window
      -- above a lowered limit weighs as the limit, and is written back as it was (see rl_load)
      local pw = (prev > limit and limit or prev) * (w - (now - cs))
      if pw > (limit - curr - cost) * w then return nil end
      curr = curr + cost
      local exp = cs + 2 * w
      local x = ((limit - curr) * w - pw) / w
      local remaining = x - x % 1
      if remaining < 0 then remaining = 0 end
      if exp ~= e then
        v = string.format('%s=%d:%d:%d:%d', field, exp, cs, curr, prev)
        local px = exp >= 1e12 and exp < 1e13 and string.sub(v, #field + 2, #field + 14) or string.format('%d', exp)
        redis.call('SET', key, v, 'PXAT', px)
      elseif prev == cn then
        -- the same windows: one count changes
        redis.call('SET', key, head .. string.format('%d:', curr) .. c, 'KEEPTTL')
      else
        redis.call('SET', key, string.format('%s=%d:%d:%d:%d', field, exp, cs, curr, prev), 'KEEPTTL')
      end
      local n = (exp - now) * (limit + 1) + remaining
      if n < 9007199254740992 then return n end
      return { 1, 0, remaining, exp - now }
    end
    -- Token bucket and GCRA in integer ticks: a unit is w ticks, limit ticks refill per ms, capt ticks when full.
    limit = -limit
    if v then
      f, e, a, b, c = string.match(v, '^([^=;]*)=(%d+):(%d+):(%d+):(%d+)$')
      if f ~= field then return nil end
      e = e + 0
      if e <= now then e = nil end -- expired (see the fixed window above)
    end
    cap = cap + 0
    local capt = cap * w
    local level, last = capt, now -- last: the instant the state is as of (see rl_load)
    if e then
      c = c + 0
      if c > 0 then
        level = b + 0
        if c ~= w then level = math.floor(level / c * w) end -- stored in another rule's ticks (its rate changed)
        local gain = (now - a) * limit
        if gain > 0 then
          if gain >= capt - level then level = capt else level = level + gain end
        elseif gain < 0 then
          last = a + 0 -- Redis' clock went back: the state stays as of its later instant (see rl_load)
        end
        if level > capt then level = capt end
      end
    end
    local need = cost * w - level
    if need > 0 then
      -- Rejected: waitMs, and remaining and resetMs as loaded.
      local x = need / limit
      local wait = x - x % 1
      if wait * limit < need then wait = wait + 1 end
      local remaining, reset = cap, 0
      if level < capt then
        local short = capt - level
        x = short / limit
        reset = x - x % 1
        if reset * limit < short then reset = reset + 1 end
        reset = last - now + reset
        if e and now + reset > e then return nil end -- the entry must live longer (a rule changed)
        x = level / w
        remaining = x - x % 1
      end
      return { 0, last - now + wait, remaining, reset }
    end
    level = level - cost * w
    local short = capt - level
    local x = short / limit
    local reset = x - x % 1
    if reset * limit < short then reset = reset + 1 end
    local exp = last + reset
    reset = last - now + reset
    x = level / w
    local remaining = x - x % 1
    if exp ~= e then
      local px = string.format('%d', exp)
      if full and level == capt - w then
        v = field .. '=' .. px .. string.format(':%d:', last) .. full -- a full bucket less one unit, as text
      else
        v = field .. '=' .. px .. string.format(':%d:%d:', last, level) .. wt
      end
      redis.call('SET', key, v, 'PXAT', px)
    else
      redis.call('SET', key, field .. string.format('=%d:%d:%d:', exp, last, level) .. wt, 'KEEPTTL')
    end
    local n = reset * (cap + 1) + remaining
    if n < 9007199254740992 then return n end
    return { 1, 0, remaining, reset }
  end
  -- Several rules: each rule's entry is parsed in place, in rule order.
  local v = full
  if v == nil then v = redis.call('GET', key) end
  local len, pos = v and #v or 0, 1
  local match, format = string.match, string.format -- looked up once
  -- out: the full reply of a rejected call, {0, per rule: waitMs, remaining, resetMs}, made at its first rejecting
  -- rule; till then m1, t1 ... m3, t3 keep the remaining and resetMs as loaded of rules 1 to 3 (all admitting)
  local out, m1, t1, m2, t2, m3, t3
  local k, n = 0, 1 -- rules gone through; out's length
  local value, atpos -- the new entries, in rule order; where the text of the latest expAtMs starts in it
  local span = -1 -- bytes of v the rules' entries and their separators cover
  local was, at, late = 0, 0, false
  while field do
    local alg, cap, nexti = 0, limit, i + 3 -- alg 0: fixed window, 1: sliding window, 2: token bucket / GCRA
    if limit < 0 then
      alg, limit, nexti = 2, -limit, i + 4
      cap = argv[i + 3] + 0
    elseif w < 0 then
      alg, w = 1, -w
    end
    -- The rule's stored entry, "<field>=<e>:<a>:<b>[:<c>]", is looked for at byte pos, where the previous rule's
    -- ended (entries are written in rule order); head: its text up to b (reused as text when only b changes), p:
    -- its first byte, q: the byte after it, r: the byte after its separator. An entry stored elsewhere (the rules
    -- were reordered) is left unread here, and the span check below hands the call over.
    local p, head, e, a, b, c, q
    if pos <= len then
      local name, r
      if alg == 0 then
        head, name, e, a, b, q, r = match(v, '^(([^=;]*)=(%d+):(%d+):)(%d+)();?()', pos)
      elseif alg == 1 then
        head, name, e, a, b, c, q, r = match(v, '^(([^=;]*)=(%d+):(%d+):)(%d+):(%d+)();?()', pos)
      else
        name, e, a, b, c, q, r = match(v, '^([^=;]*)=(%d+):(%d+):(%d+):(%d+)();?()', pos)
      end
      if name == field then
        if r == q and q <= len then return nil end -- followed by something else than ';'
        p, pos = pos, r
        span = span + q - p + 1
        e, a = e + 0, a + 0 -- b and c are converted where they are used
        if e > was then was = e end
        -- Expired (another rule's entry kept the key alive): its state is gone, whatever the rule now.
        if e <= now then e, a, b, c = nil, nil, nil, nil end
      else
        e, a, b, c = nil, nil, nil, nil
      end
    end
    -- The rule's decision: ok (1 or 0), waitMs, remaining and resetMs of the state as loaded, keep (the expAtMs
    -- that state needs, 0: none; what a rejected call may move the stored entry's expiry to) and, when the rule
    -- admits, its new entry, pre .. nums .. post (as rl_entry writes it), and its expAtMs exp.
    local ok, wait, remaining, reset, keep, pre, nums, post, exp
    if alg == 0 then
      local start, count = now, 0
      if e and now < a + w then
        start, count = a, b + 0
        if count > limit then count = limit end
      end
      exp = start + w
      remaining, reset, keep = limit, 0, 0 -- an empty window keeps no entry
      if count > 0 then remaining, reset, keep = limit - count, exp - now, exp end
      if count + cost > limit then
        ok, wait = 0, exp - now
      else
        ok, wait, post = 1, 0, ''
        count = count + cost
        if exp == e and start == a then
          pre, nums = head, format('%d', count) -- the same window: only the count changes
        else
          pre, nums = field, format('=%d:%d:%d', exp, start, count)
        end
      end
    elseif alg == 1 then
      local cs = now - now % w
      local curr, prev, cn = 0, 0, nil
      if e then
        if a > now then cs = a end -- Redis' clock went back: the stored window stays current (see rl_load)
        if a == cs then
          cn = c + 0
          curr, prev = b + 0, cn
        elseif a == cs - w then
          prev = b + 0
        end
        if curr > limit then curr = limit end
      end
      -- prev * (w - elapsed) / w <= limit - curr - cost, and remaining, in integers (see rl_wait); a previous window
      -- above a lowered limit weighs as the limit, and is written back as it was (see rl_load)
      local pw = (prev > limit and limit or prev) * (w - (now - cs))
      if pw > (limit - curr - cost) * w then return nil end
      keep = 0
      if curr > 0 then keep = cs + 2 * w elseif prev > 0 then keep = cs + w end
      local x = ((limit - curr) * w - pw) / w
      remaining, reset = x - x % 1, keep > 0 and keep - now or 0
      if remaining < 0 then remaining = 0 end
      ok, wait = 1, 0
      curr = curr + cost
      exp = cs + 2 * w
      if exp == e and prev == cn then
        pre, nums, post = head, format('%d:', curr), c -- the same windows: one count changes
      else
        pre, nums, post = field, format('=%d:%d:%d:%d', exp, cs, curr, prev), ''
      end
    else
      local capt = cap * w
      local level, last = capt, now -- last: the instant the state is as of (see rl_load)
      if c == argv[i + 2] then c = w elseif c then c = c + 0 end -- ticks per unit, compared as text first
      if c and c > 0 then
        level = b + 0
        if c ~= w then level = math.floor(level / c * w) end -- stored in another rule's ticks (its rate changed)
        local gain = (now - a) * limit
        if gain > 0 then
          if gain >= capt - level then level = capt else level = level + gain end
        elseif gain < 0 then
          last = a -- Redis' clock went back: the state stays as of its later instant (see rl_load)
        end
        if level > capt then level = capt end
      end
      remaining, reset, keep = cap, 0, 0
      if level < capt then
        local short = capt - level
        local x = short / limit
        reset = x - x % 1
        if reset * limit < short then reset = reset + 1 end
        x = level / w
        remaining, keep = x - x % 1, last + reset
        reset = last - now + reset
      end
      local need = cost * w - level
      if need > 0 then
        local x = need / limit
        wait = x - x % 1
        if wait * limit < need then wait = wait + 1 end
        wait = last - now + wait
        ok = 0
      else
        level = level - cost * w
        local short = capt - level
        local x = short / limit
        local reset2 = x - x % 1
        if reset2 * limit < short then reset2 = reset2 + 1 end
        exp = last + reset2
        ok, wait = 1, 0
        pre, nums, post = field, format('=%d:%d:%d:', exp, last, level), argv[i + 2]
      end
    end
    if e and keep > e then late = true end
    k = k + 1
    if out then
      out[n + 1], out[n + 2], out[n + 3] = wait, remaining, reset
      n = n + 3
    elseif ok == 0 then
      -- The first rejecting rule: the full reply starts, with the rules before it as loaded (sized for 3 rules: a
      -- table that grows costs a rehash). Past the 4th rule, the general path builds it.
      if k == 1 then
        out = { 0, wait, remaining, reset, 0, 0, 0, 0, 0, 0 }
      elseif k == 2 then
        out = { 0, 0, m1, t1, wait, remaining, reset, 0, 0, 0 }
      elseif k == 3 then
        out = { 0, 0, m1, t1, 0, m2, t2, wait, remaining, reset }
      elseif k == 4 then
        out = { 0, 0, m1, t1, 0, m2, t2, 0, m3, t3, wait, remaining, reset }
      else
        return nil
      end
      n = 1 + 3 * k
    else
      if k == 1 then
        m1, t1 = remaining, reset
      elseif k == 2 then
        m2, t2 = remaining, reset
      elseif k == 3 then
        m3, t3 = remaining, reset
      end
      if exp > at then at, atpos = exp, value and #value + #field + 3 or #field + 2 end
      if value then value = value .. ';' .. pre .. nums .. post else value = pre .. nums .. post end
    end
    i = nexti
    field = argv[i]
    if field then limit, w = argv[i + 1] + 0, argv[i + 2] + 0 end
  end
  if v and span ~= len then return nil end -- the key holds another limiter's entries too
  if out then
    -- Rejected: nothing is written, unless a stored state now needs its entry longer (a rule changed), which the
    -- general path does (rl_keep).
    if late then return nil end
    out[n + 1] = nil -- a reply ends at its first nil: two rules leave 3 of the 10 slots unused
    return out
  end
  if at == was then
    redis.call('SET', key, value, 'KEEPTTL')
  else
    -- the new expiry is cut from the entry's text (13 digits from 2001-09-09 to 2286-11-20)
    redis.call('SET', key, value, 'PXAT', at >= 1e12 and at < 1e13 and string.sub(value, atpos, atpos + 12) or
      format('%d', at))
  end
  return time[1] .. ':' .. time[2] .. ';' .. value
end
