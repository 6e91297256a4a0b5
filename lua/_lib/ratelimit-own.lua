-- ratelimit-own: the decision of lua/ratelimit/consume.lua for a limiter of one to four rules, unrolled. In the
-- shared script the block below is a comment; a limiter's own copy of the script (packages/ratelimit/src/
-- specialised.ts) replaces it with code: the main part once, each rule's parts ("-- @<alg>": load and decide,
-- "reject": its waitMs, remaining and resetMs for a rejection's reply, "write": its new entry) once per rule in rule
-- order, with $names filled in: constants $field, $limit, $w (a sliding window's windowMs, a bucket's ticks per
-- unit, positive), $cap, $unit ($w as text), $offset (where the entry's expAtMs starts in it), $n (the rule's
-- number, naming its locals), the captures $h, $e, $a, $b, $c of its stored entry, a bucket's $fl (its level once
-- full less one unit, in ticks; -1 when not exact) and $full (that level as text); and in the main part the rules'
-- pattern, captures and parts.
-- It decides, replies and writes exactly as rl_fast's loop over several rules (lua/_lib/ratelimit-one.lua), for a
-- key holding nothing or exactly the rules' entries in rule order (one string.match of the whole value). Everything
-- else (another limiter's entry, a rejecting sliding window, a rejection that must move an entry's expiry) breaks
-- out, having written nothing, with the value read in r6, which rl_fast then takes as its full. No loop, no rule
-- table, constants in place, every entry formatted only once all rules admit, one concatenation of the value: about
-- a sixth less Redis CPU than the loop for three rules (callgrind). The block is top-level code in a `repeat ...
-- until true` (`break` leaves it), not a function: a function is a closure built on every call.
-- The usual call makes as few strings and formats as few numbers as it can (callgrind, redis-server instructions
-- per call, three rules fw 1 s + sw 1 min + tb 1 h at 1e9 on 10,000 random keys, one rule 45.1k throughout):
-- each '%d' of a string.format costs about 1k (a sprintf), each string Lua makes about 1.3k more (interned,
-- allocated, collected), a capture that makes a new string about 0.6k, the string.match of three entries 13.6k.
-- With a cost of 1, the usual entries (a window the same or new, a bucket full less one unit: $whole, $wholeprep
-- "-- @<alg> whole", $wholeat) are one format, a same window's stored text passed as '%s', the counts of new
-- windows and a full bucket's level constants in it; the expiry of a later entry is found from its field (atf):
-- 74.5k -> 70.4k. A new key with a cost of 1 ("-- @<alg> new", $newkey, $new, $newformat, $newargs): every rule
-- admits, so no decision code runs, one format, the expiry cut at a place known in advance: -> 68.1k (new keys
-- 60.6k -> 55.4k). The rule table the general path reads (packages/ratelimit/src/specialised.ts) is built after
-- the block, only when it breaks out: -> 65.8k (3 runs, 65.8k-66.0k; new keys 53.3k). Entries written one by one
-- also take a new window's count, new sliding windows' counts and a full bucket's level as constants, and a stored
-- level equal to that full one is not converted ($full, $fl). Tried and dropped: position captures for a fixed
-- window's start, count and head, cut with string.sub when read (no change: a third of the calls read them; a
-- bucket's: -0.2k), '[0-9]' for '%d' and '|' unescaped in the pattern (no change), now formatted once and joined
-- with '..' where two entries hold it (worse: a string more for a '%d' less).
-- One rule: its part "-- @<alg> one" alone is the block, with $name (the field as a pattern matches it) and $full
-- (the text a full bucket's entry ends with after one unit is taken, "<level>:<unit>", or nil); it decides, replies
-- and writes exactly as rl_fast does for one rule, and whatever rl_fast would hand over it leaves to the general
-- path, setting rules to false (rl_fast is then not called: it would read the key again only to hand it over).
--[==[
repeat -- the rules' usual call; anything else breaks out with the value read as r6, rl_fast's full (see above)
  local key = KEYS[1]
  local v = redis.call('GET', key)
  local format, was, ok = string.format, 0, true
  if $newkey then
    -- A new key, one unit (a limit or capacity is at least 1: every rule admits it): each rule's entry of a new
    -- window or a full bucket, one format for them all; every number 13 digits (now late enough for the earliest
    -- window start; past 2286 the expiry is formatted), so the expiry (at) is cut from a known place (ato).
    $new
    local value = format('$newformat', $newargs)
    redis.call('SET', key, value, 'PXAT', at < 1e13 and string.sub(value, ato, ato + 12) or format('%d', at))
    return t[1] .. ':' .. t[2] .. ';' .. value
  end
  local $captures
  if v then
    $captures = string.match(v, '$pattern')
    if not $first then r6 = v break end
  end
  $decide
  if not ok then
    -- Rejected: waitMs, remaining and resetMs of each rule as loaded; nothing is written (a stored entry that must
    -- now live longer, a rule changed, is the general path's).
    $reject
    return { 0, $reply }
  end
  local at, atx, ato, atf, value = 0, nil, 0, nil, nil
  if cost == 1 then
    -- The usual entries (a window the same or new, a bucket full): one format makes the whole value, no entry a
    -- string of its own (see the cost notes below); the value stays nil for any other entry.
    $wholeprep
    $whole
    if value then
      atx = value
      $wholeat
    end
  end
  if not value then
    local $entries
    $write
    value = $value
  end
  if at == was then
    redis.call('SET', key, value, 'KEEPTTL')
  else
    -- the new expiry is cut from the entry's text (13 digits from 2001-09-09 to 2286-11-20), as rl_fast does; in a
    -- value made whole, a later entry's place is found from its field
    if atf then ato = string.find(atx, atf, 1, true) + ato end
    redis.call('SET', key, value, 'PXAT', at >= 1e12 and at < 1e13 and string.sub(atx, ato, ato + 12) or
      format('%d', at))
  end
  return t[1] .. ':' .. t[2] .. ';' .. value
until true
-- @fw
  local e$n, exp$n, start$n, count$n, same$n -- $field: fixed window
  do
    local limit, w, e, a = $limit, $w, nil, nil
    if $e then
      e = $e + 0
      if e > was then was = e end
      if e > now then a = $a + 0 else e = nil end -- expired: gone
    end
    local start, count = now, 0
    if e and now < a + w then
      start, count = a, $b + 0
      if count > limit then count = limit end
    end
    local exp = start + w
    if count + cost > limit then ok = false end
    e$n, exp$n, start$n, count$n, same$n = e, exp, start, count, exp == e and start == a
  end
-- @fw reject
  local wait$n, remaining$n, reset$n = 0, $limit, 0
  if count$n > 0 then
    remaining$n, reset$n = $limit - count$n, exp$n - now
    if e$n and exp$n > e$n then r6 = v break end
  end
  if count$n + cost > $limit then wait$n = exp$n - now end
-- @fw write
  if same$n then
    x$n = $h .. format('%d', count$n + cost) -- the same window: only the count changes
  elseif count$n == 0 and cost == 1 then
    x$n = format('$field=%d:%d:1', exp$n, start$n) -- a new window: a constant count
  else
    x$n = format('$field=%d:%d:%d', exp$n, start$n, count$n + cost)
  end
  if exp$n > at then at, atx, ato = exp$n, x$n, $offset end
-- @fw new
  local f$n = now + $w
-- @sw
  local e$n, cs$n, curr$n, prev$n, pw$n, same$n -- $field: sliding window
  do
    local limit, w, e, a = $limit, $w, nil, nil
    if $e then
      e = $e + 0
      if e > was then was = e end
      if e > now then a = $a + 0 else e = nil end -- expired: gone
    end
    local cs = now - now % w
    local curr, prev, cn = 0, 0, nil
    if e then
      if a > now then cs = a end -- Redis' clock went back: the stored window stays current
      if a == cs then
        cn = $c + 0
        curr, prev = $b + 0, cn
      elseif a == cs - w then
        prev = $b + 0
      end
      if curr > limit then curr = limit end
    end
    -- a previous window above a lowered limit weighs as the limit, and is written back as it was (see rl_load)
    local pw = (prev > limit and limit or prev) * (w - (now - cs))
    if pw > (limit - curr - cost) * w then r6 = v break end -- its wait is the general path's to compute
    e$n, cs$n, curr$n, prev$n, pw$n, same$n = e, cs, curr, prev, pw, cs + 2 * w == e and prev == cn
  end
-- @sw reject
  local wait$n, remaining$n, reset$n = 0, 0, 0
  do
    local limit, w, keep = $limit, $w, 0
    if curr$n > 0 then keep = cs$n + 2 * w elseif prev$n > 0 then keep = cs$n + w end
    local x = ((limit - curr$n) * w - pw$n) / w
    remaining$n = x - x % 1
    if remaining$n < 0 then remaining$n = 0 end
    if keep > 0 then reset$n = keep - now end
    if e$n and keep > e$n then r6 = v break end
  end
-- @sw write
  do
    local exp = cs$n + 2 * $w
    if same$n then
      x$n = $h .. format('%d:', curr$n + cost) .. $c -- the same windows: one count changes
    elseif curr$n == 0 and prev$n == 0 and cost == 1 then
      x$n = format('$field=%d:%d:1:0', exp, cs$n) -- both windows new: constant counts
    else
      x$n = format('$field=%d:%d:%d:%d', exp, cs$n, curr$n + cost, prev$n)
    end
    if exp > at then at, atx, ato = exp, x$n, $offset end
  end
-- @sw whole
  local f$n = cs$n + 2 * $w -- its expAtMs
-- @sw new
  local c$n = now - now % $w
  local f$n = c$n + 2 * $w
-- @bucket
  local e$n, level$n, last$n -- $field: token bucket or GCRA, in ticks
  do
    local limit, w, cap, e = $limit, $w, $cap, nil
    if $e then
      e = $e + 0
      if e > was then was = e end
      if e <= now then e = nil end -- expired: gone
    end
    local capt = cap * w
    local level, last = capt, now -- last: the instant the state is as of (see rl_load)
    if e then
      local c = $c
      if c == '$unit' then c = w else c = c + 0 end -- ticks per unit, compared as text first
      if c > 0 then
        if $b == '$full' then level = $fl else level = $b + 0 end -- full less one unit: its text, not converted
        if c ~= w then level = math.floor(level / c * w) end -- stored in another rule's ticks (its rate changed)
        local gain = (now - $a) * limit
        if gain > 0 then
          if gain >= capt - level then level = capt else level = level + gain end
        elseif gain < 0 then
          last = $a + 0 -- Redis' clock went back: the state stays as of its later instant (see rl_load)
        end
        if level > capt then level = capt end
      end
    end
    if cost * w - level > 0 then ok = false end
    e$n, level$n, last$n = e, level, last
  end
-- @bucket reject
  local wait$n, remaining$n, reset$n = 0, $cap, 0
  do
    local limit, w, level = $limit, $w, level$n
    local capt = $cap * w
    if level < capt then
      local short = capt - level
      local x = short / limit
      reset$n = x - x % 1
      if reset$n * limit < short then reset$n = reset$n + 1 end
      reset$n = last$n - now + reset$n
      x = level / w
      remaining$n = x - x % 1
      if e$n and now + reset$n > e$n then r6 = v break end
    end
    local need = cost * w - level
    if need > 0 then
      local x = need / limit
      wait$n = x - x % 1
      if wait$n * limit < need then wait$n = wait$n + 1 end
      wait$n = last$n - now + wait$n
    end
  end
-- @bucket write
  do
    local limit, w = $limit, $w
    local level = level$n - cost * w
    local short = $cap * w - level
    local x = short / limit
    local reset = x - x % 1
    if reset * limit < short then reset = reset + 1 end
    local exp = last$n + reset
    if level == $fl then
      x$n = format('$field=%d:%d:$full:$unit', exp, last$n) -- full less one unit: a constant level
    else
      x$n = format('$field=%d:%d:%d:$unit', exp, last$n, level)
    end
    if exp > at then at, atx, ato = exp, x$n, $offset end
  end
-- @bucket whole
  local f$n -- its expAtMs once full less one unit: the ticks short of full, over the ticks per ms, rounded up
  do
    local x = $w / $limit
    f$n = x - x % 1
    if f$n * $limit < $w then f$n = f$n + 1 end
    f$n = last$n + f$n
  end
-- @bucket new
  local f$n
  do
    local x = $w / $limit
    f$n = x - x % 1
    if f$n * $limit < $w then f$n = f$n + 1 end
    f$n = now + f$n
  end
-- @fw one
repeat -- $field, the only rule: fixed window
  local key, limit, w = KEYS[1], $limit, $w
  local v = redis.call('GET', key)
  local head, e, a, b
  if v then
    head, e, a, b = string.match(v, '^($name=(%d+):(%d+):)(%d+)$')
    if not head then rules = false break end -- another limiter's entry, or one that does not parse
    e, a = e + 0, a + 0
    if e <= now then e = nil end -- expired: gone
  end
  local start, count = now, 0
  if e and now < a + w then
    start, count = a, b + 0
    if count > limit then count = limit end
  end
  local exp = start + w
  local reset = exp - now
  if count + cost > limit then
    if count == 0 or exp > e then rules = false break end -- the entry must live longer (a rule changed)
    local n = reset * (limit + 1) + limit - count
    if n < 9007199254740992 then return -1 - n end
    return { 0, reset, limit - count, reset }
  end
  count = count + cost
  if exp ~= e then
    v = string.format('$field=%d:%d:%d', exp, start, count)
    redis.call('SET', key, v, 'PXAT', exp >= 1e12 and exp < 1e13 and string.sub(v, $offset, $offset + 12) or
      string.format('%d', exp))
  elseif start == a then
    redis.call('SET', key, head .. string.format('%d', count), 'KEEPTTL') -- the same window: only the count changes
  else
    redis.call('SET', key, string.format('$field=%d:%d:%d', exp, start, count), 'KEEPTTL')
  end
  local n = reset * (limit + 1) + limit - count
  if n < 9007199254740992 then return n end
  return { 1, 0, limit - count, reset }
until true
-- @sw one
repeat -- $field, the only rule: sliding window
  local key, limit, w = KEYS[1], $limit, $w
  local v = redis.call('GET', key)
  local head, e, a, b, c
  if v then
    head, e, a, b, c = string.match(v, '^($name=(%d+):(%d+):)(%d+):(%d+)$')
    if not head then rules = false break end -- another limiter's entry, or one that does not parse
    e = e + 0
    if e <= now then e = nil end -- expired: gone
  end
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
  -- a previous window above a lowered limit weighs as the limit, and is written back as it was (see rl_load)
  local pw = (prev > limit and limit or prev) * (w - (now - cs))
  if pw > (limit - curr - cost) * w then rules = false break end -- its wait is the general path's to compute
  curr = curr + cost
  local exp = cs + 2 * w
  local x = ((limit - curr) * w - pw) / w
  local remaining = x - x % 1
  if remaining < 0 then remaining = 0 end
  if exp ~= e then
    v = string.format('$field=%d:%d:%d:%d', exp, cs, curr, prev)
    redis.call('SET', key, v, 'PXAT', exp >= 1e12 and exp < 1e13 and string.sub(v, $offset, $offset + 12) or
      string.format('%d', exp))
  elseif prev == cn then
    redis.call('SET', key, head .. string.format('%d:', curr) .. c, 'KEEPTTL') -- the same windows: one count changes
  else
    redis.call('SET', key, string.format('$field=%d:%d:%d:%d', exp, cs, curr, prev), 'KEEPTTL')
  end
  local n = (exp - now) * (limit + 1) + remaining
  if n < 9007199254740992 then return n end
  return { 1, 0, remaining, exp - now }
until true
-- @bucket one
repeat -- $field, the only rule: token bucket or GCRA, in ticks
  local key, limit, w, cap = KEYS[1], $limit, $w, $cap
  local v = redis.call('GET', key)
  local e, a, b, c
  if v then
    e, a, b, c = string.match(v, '^$name=(%d+):(%d+):(%d+):(%d+)$')
    if not e then rules = false break end -- another limiter's entry, or one that does not parse
    e = e + 0
    if e <= now then e = nil end -- expired: gone
  end
  local capt = cap * w
  local level, last = capt, now -- last: the instant the state is as of (see rl_load)
  if e then
    if c == '$unit' then c = w else c = c + 0 end -- ticks per unit, compared as text first
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
      if e and now + reset > e then rules = false break end -- the entry must live longer (a rule changed)
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
    if $full and level == capt - w then
      v = '$field=' .. px .. string.format(':%d:', last) .. $full -- a full bucket less one unit, as text
    else
      v = '$field=' .. px .. string.format(':%d:%d:$unit', last, level)
    end
    redis.call('SET', key, v, 'PXAT', px)
  else
    redis.call('SET', key, string.format('$field=%d:%d:%d:$unit', exp, last, level), 'KEEPTTL')
  end
  local n = reset * (cap + 1) + remaining
  if n < 9007199254740992 then return n end
  return { 1, 0, remaining, reset }
until true
]==]
