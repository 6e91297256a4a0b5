-- Fetch: hands up to `count` jobs of one partition to a worker, each with a new fence and a lease on server time.
-- First it settles what time has made due: expired leases (their worker died or stalled: the attempt counts as
-- failed, the job is retried after its backoff or buried) and due delayed jobs (moved to the ready stream or the prio
-- zset). Then it reads new entries of the ready stream through the consumer group (NOACK, and trimmed at once: the
-- leases zset is the record of what runs), then priority 1-9 jobs. Grouped jobs pass the group's concurrency limit
-- and rate-limit rules here; a job over a limit waits in gwait (concurrency) or in delayed (rate, until the rules
-- admit it). When fewer than `count` jobs were found, it also replies what a worker needs to wait: the ms until
-- the next delayed job or lease is due (0 when it read `count` candidates and some could not start for another reason
-- than a rate limit: look again at once), and the last ids of the ready and wake streams (for XREAD BLOCK).
-- Per job handed out the reply has 5 items: id, fence, attempt (from 1), attempts allowed, data. Jobs buried here
-- (their last attempt's lease expired) are listed in the reply's 6th item, for the worker to report them.
-- KEYS[1] jobs (hash): job fields
-- KEYS[2] ready (stream): ready jobs of priority 0, consumer group "q"
-- KEYS[3] delayed (zset): "<priority digit><id>" -> due (server ms)
-- KEYS[4] prio (zset): jobs of priority 1-9
-- KEYS[5] leases (zset): running job -> lease deadline (server ms)
-- KEYS[6] active (hash): running job -> its current delivery: "<fence>.0<resultTtlMs>" or "<fence>" (grouped jobs)
-- KEYS[7] done (zset): completed job -> expiry (server ms)
-- KEYS[8] dead (zset): dead job -> time of death (server ms)
-- KEYS[9] cancelled (zset): cancelled job -> expiry (server ms)
-- KEYS[10] meta (hash): "f" fence counter, "paused"
-- KEYS[11] groups (hash): "c:<group>" running count, "r:<group>" rate-limit state
-- KEYS[12] gwait (zset): jobs waiting for a slot of their group
-- KEYS[13] wake (stream): wake-up marks
-- ARGV[1] count (integer): most jobs to hand out
-- ARGV[2] leaseMs (ms): lease of each job handed out
-- ARGV[3] groupLimit (integer): most running jobs per group, 0 = no limit
-- ARGV[4] groupRules (string): rate-limit rules per group, "<name> <alg> <limit> <windowMs> <burst>;...", '' = none
-- ARGV[5] maxDead (integer): most dead jobs kept
-- ARGV[6] deadAgeMs (ms): how long dead jobs are kept
-- ARGV[7] u (number): a random number in [0, 1) for the backoff jitter of jobs whose lease expired (the i-th one of the
-- call draws the fractional part of u + i times the golden ratio, as in lua/queue/finish.lua: the jobs of a crashed
-- worker, whose leases expire together, get retries spread over the jitter, not due in one instant)
-- ARGV[8] pub (string): 'SPUBLISH' to announce jobs that died here, '' not to
-- ARGV[9] channel (string): the partition's channel
-- ARGV[10] maxBytes (integer, optional): most bytes of job records one call hands out (always at least one job): the
-- jobs read beyond it are put back where they were, ahead of the jobs behind them, for the next fetch
-- Reply: [nowMs: number, paused: number, nextDueMs: number, lastReady: string, lastWake: string, died: string, ...job: (string | number)[]]
-- (died: "<attempts> <id>" per job buried here, one per line; '' for none)
--@include now-ms
--@include queue-due
--@include queue
--@include queue-retry
local K = q_keys()
local now = now_ms()
-- now as text once: redis.call formats a number argument with %.17g each time, string.format('%d') costs a third.
local nowText = string.format('%d', now)
local want = tonumber(ARGV[1])
local glimit = tonumber(ARGV[3])
-- Per-group rate limits: their functions (lua/_lib/ratelimit.lua, q_group_rate) are built only for a call that has
-- rules.
local rules, q_rate = nil, nil
if ARGV[4] ~= '' then
--@include ratelimit
--@include queue-group-rate
  rules, q_rate = rl_rules(ARGV[4]), q_group_rate
end
local lines, died = {}, {}
local wake = false

-- Expired leases.
local expired = redis.call('ZRANGE', K.leases, '-inf', nowText, 'BYSCORE', 'LIMIT', '0', '100')
local u = tonumber(ARGV[7])
for i, id in ipairs(expired) do
  local raw = redis.call('HGET', K.jobs, 'j:' .. id)
  if raw then
    local rec = cmsgpack.unpack(raw)
    q_deactivate(K, id, rec)
    rec[Q_ATTEMPTS] = rec[Q_ATTEMPTS] + 1
    local err = 'LeaseExpired: the lease of attempt ' .. rec[Q_ATTEMPTS] .. ' expired (its worker stopped, crashed or stalled)'
    local ui = (u + (i - 1) * 0.6180339887498949) % 1
    local fate = q_retry_or_bury(K, id, rec, err, now, ui, tonumber(ARGV[5]), tonumber(ARGV[6]))
    if fate == 'dead' then
      lines[#lines + 1] = 'D ' .. id
      died[#died + 1] = rec[Q_ATTEMPTS] .. ' ' .. id
    end
  else
    redis.call('HDEL', K.active, id)
    redis.call('ZREM', K.leases, id)
  end
end

-- Due delayed jobs.
local due = redis.call('ZRANGE', K.delayed, '-inf', nowText, 'BYSCORE', 'LIMIT', '0', '1000')
if #due > 0 then
  redis.call('ZREM', K.delayed, unpack(due))
  for _, member in ipairs(due) do
    if q_enqueue(K, string.sub(member, 2), tonumber(string.sub(member, 1, 1)), now) then wake = true end
  end
end
q_publish(ARGV[8], ARGV[9], lines)

local paused = redis.call('HGET', K.meta, 'paused') == '1'
-- Candidate jobs; the ready-stream entry each came from (none for the prio zset), or its prio zset score, and for one
-- of band 0 the time of its place there (its wait for its group's slot, or its ready-stream entry: see maxBytes).
local cands, cids, cscores, bands = {}, {}, {}, {}
local room, streamed = want, false -- streamed: candidates came from the ready stream (their entry ids in cids)
if not paused then
  -- Jobs of priority 0 that waited for their group's slot and were put back when it freed (band 0 of the prio zset,
  -- lua/_lib/queue.lua q_group_wake), and jobs of the ready stream an earlier fetch read beyond its maxBytes, come
  -- first: they were read before anything now in the ready stream, and the jobs of their group read since must not
  -- take the slot ahead of them.
  local back = redis.call('ZRANGE', K.prio, '-inf', string.format('(%d', Q_PRIO_SHIFT), 'BYSCORE', 'LIMIT', '0', want,
    'WITHSCORES')
  if #back > 0 then
    for i = 1, #back, 2 do
      local n = #cands + 1
      cands[n], cscores[n], bands[n] = back[i], back[i + 1], math.floor(tonumber(back[i + 1]))
    end
    redis.call('ZREM', K.prio, unpack(cands))
    room = want - #cands
  end
end
if not paused and room > 0 then
  -- NOACK: nothing enters the group's pending list (this script is the whole delivery; the leases zset records it).
  local ok, res = pcall(redis.call, 'XREADGROUP', 'GROUP', 'q', 'q', 'COUNT', room, 'NOACK', 'STREAMS', K.ready, '>')
  if not ok then
    -- NOGROUP: the first fetch of this partition (or the stream was deleted): read from the start.
    redis.call('XGROUP', 'CREATE', K.ready, 'q', '0', 'MKSTREAM')
    res = redis.call('XREADGROUP', 'GROUP', 'q', 'q', 'COUNT', room, 'NOACK', 'STREAMS', K.ready, '>')
  end
  if res then
    local entries = res[1][2]
    local n0 = #cands
    for i, e in ipairs(entries) do cands[n0 + i], cids[n0 + i] = e[2][2], e[1] end
    streamed = #entries > 0
    local last = entries[#entries]
    if last then
      -- The group reads in id order, so every entry up to the last one read has been read: trim them (whole stream
      -- nodes at a time, far cheaper than deleting each id), then the last one.
      redis.call('XTRIM', K.ready, 'MINID', last[1])
      redis.call('XDEL', K.ready, last[1])
    end
  end
  if #cands < want then
    local popped = redis.call('ZPOPMIN', K.prio, want - #cands)
    for i = 1, #popped, 2 do
      local n = #cands + 1
      cands[n], cscores[n] = popped[i], popped[i + 1]
    end
  end
end

local picked, recs, rated = {}, {}, 0
-- The place of a job parked now in its group's wait list: "<time 15 digits><rank 6 digits>", after every place the
-- group's list holds already, and not before the time its id was freed and created again (freed, or nil). Server time
-- can step back (a failover to a replica whose clock is behind, a host clock step): the time alone would put the job
-- ahead of the group's jobs parked before the step, and, dated before its id was freed, its place would read as an
-- earlier job's (q_group_wake drops those) and the job would never run. glast caches each group's last place for the
-- call.
local glast = {}
local function q_park_at(g, freed)
  local last = glast[g]
  if not last then
    last = { 0, 0 }
    local top = redis.call('ZRANGE', K.gwait, '[' .. g .. '\1', '[' .. g .. '\0', 'BYLEX', 'REV', 'LIMIT', '0', '1')[1]
    local at = top and string.match(top, '^[^%z]*%z([^%z]*)%z')
    -- Entries of earlier versions carry the time alone (rank 0).
    if at then last = { tonumber(string.sub(at, 1, 15)) or 0, tonumber(string.sub(at, 16)) or 0 } end
    glast[g] = last
  end
  local t, r = now, 1
  freed = freed and tonumber(freed)
  if freed and freed > t then t = freed end
  if t < last[1] then t = last[1] end
  if t == last[1] then r = last[2] + 1 end
  if r > 999999 then t, r = t + 1, 1 end
  last[1], last[2] = t, r
  return string.format('%015d%06d', t, r)
end
-- A place kept (a handed job back at its place in the line): a later q_park_at of this call stays after it.
local function q_keep_place(g, at)
  local last = glast[g]
  if not last then return end
  local t, r = tonumber(string.sub(at, 1, 15)), tonumber(string.sub(at, 16)) or 0
  if t > last[1] or (t == last[1] and r > last[2]) then last[1], last[2] = t, r end
end
local woken = false -- a group's waiter put back by this call: the worker looks again at once
-- maxBytes: once the jobs picked reach it, the candidates still to look at are put back where they were (cut); a ready
-- stream entry goes to band 0 of the prio zset, which every fetch reads before the ready stream, by its entry's time.
local maxBytes, bytes, cut, cutRank = tonumber(ARGV[10]), 0, false, 0
local kept = {} -- candidates put back (their hand-off markers stay)
local function q_put_back(i, id)
  kept[i] = true
  if cscores[i] then
    redis.call('ZADD', K.prio, cscores[i], id)
  else
    cutRank = cutRank + 1
    redis.call('ZADD', K.prio, tonumber(string.match(cids[i], '^%d+')) + math.min(cutRank, 2047) / 2048, id)
  end
end
if #cands > 0 then
  -- The result and freed-marker fields of every candidate at once; the records too, or, with maxBytes, in chunks of
  -- 32 up to the cut (the candidates past it are put back unread: a backlog of large jobs is not copied on every fetch).
  -- With them, the hand-off marker of each candidate from the prio zset (the only place a release puts a job back).
  local fields, nc, hat = {}, #cands, {}
  for i, id in ipairs(cands) do fields[2 * i - 1], fields[2 * i] = 'r:' .. id, 's:' .. id end
  for i, id in ipairs(cands) do
    if cscores[i] then
      fields[#fields + 1] = 'h:' .. id
      hat[i] = #fields
    end
  end
  local small = redis.call('HMGET', K.jobs, unpack(fields))
  -- The place in its group's line of a candidate a release handed a free slot, when its marker matches its prio zset
  -- score (a marker an earlier version left behind does not): the time it was parked, by its band or priority.
  local function q_handed_place(i, rec)
    local at = hat[i] and small[hat[i]]
    if not at then return nil end
    local t = tonumber(string.sub(at, 1, 15))
    if t and math.floor(tonumber(cscores[i]) - rec[Q_PRIO] * Q_PRIO_SHIFT) == t then return at end
    return nil
  end
  local raws, readTo = {}, 0
  local function q_read(from)
    local to = maxBytes and math.min(from + 31, #cands) or #cands
    local names = {}
    for j = from, to do names[j - from + 1] = 'j:' .. cands[j] end
    local got = redis.call('HMGET', K.jobs, unpack(names))
    for j = from, to do raws[j] = got[j - from + 1] end
    return to
  end
  -- A job cancelled while it waited leaves its ready entry behind; once retention dropped it, the same id added again
  -- has a second entry. Each id is taken once per fetch and never while it runs (a second delivery would take a
  -- second group slot that only one outcome gives back).
  local running = redis.call('HMGET', K.active, unpack(cands))
  -- A ready entry can also outlive its job when retention dropped the job (cancelled while it waited) with its freed
  -- marker, and the same id was added again: the new job, if of priority 1-9 or delayed now, waits elsewhere (the prio
  -- or delayed zset), and that entry must not start it ahead of its priority or before its delay. (The delayed zset is
  -- looked at only while it holds anything.) The same holds for an entry a fetch put back in band 0 past its maxBytes.
  local anyDelayed = (streamed or next(bands) ~= nil) and redis.call('ZCARD', K.delayed) > 0
  local seen = {}
  for i, id in ipairs(cands) do
    if i > readTo and not cut then readTo = q_read(i) end
    local raw, freed = raws[i], small[2 * i]
    -- The time of the candidate's ready-stream entry or place in band 0 (nil for a job of priority 1-9).
    local at = bands[i] or (cids[i] and tonumber(string.match(cids[i], '^%d+')))
    -- An entry from before the id was freed and created again is the earlier job's (queue-add.lua): skipped.
    local stale = freed and at and at < tonumber(freed)
    if stale then raw = nil end
    if i > readTo then
      -- Past the cut, unread: put back unless plainly not a job to run (the fetch that reads it checks the rest).
      if not stale and not running[i] and not seen[id] and not small[2 * i - 1] then
        seen[id] = true
        q_put_back(i, id)
      end
    end
    local rec = raw and not running[i] and not seen[id] and cmsgpack.unpack(raw)
    if rec and at and (rec[Q_PRIO] ~= 0 or (anyDelayed and redis.call('ZSCORE', K.delayed, '0' .. id))) then
      rec = nil -- an earlier job's ready entry
    end
    if rec then
      seen[id] = true
      -- Anything but 'w' was cancelled while it waited, and a result field means completed: dropped here.
      if rec[Q_STATE] == 'w' and not small[2 * i - 1] and (cut or (maxBytes and #picked > 0 and bytes + #raw > maxBytes)) then
        cut = true
        q_put_back(i, id)
      elseif rec[Q_STATE] == 'w' and not small[2 * i - 1] then
        local g = rec[Q_GROUP]
        local go = true
        if g ~= '' then
          if glimit > 0 and tonumber(redis.call('HGET', K.groups, 'c:' .. g) or '0') >= glimit then
            -- FIFO (not id order) within one ms, and across a step back of the server's clock (q_park_at). A job a
            -- release handed a slot that another job took meanwhile (a second release while the first waited for a
            -- fetch: a cancel, see lua/queue/cancel.lua) goes back to its own place, ahead of the jobs parked after it.
            local place = q_handed_place(i, rec)
            if place then q_keep_place(g, place) else place = q_park_at(g, freed) end
            redis.call('ZADD', K.gwait, 0, g .. '\0' .. place .. '\0' .. id)
            go = false
          elseif rules then
            local wait = q_rate(K, g, rules, now)
            if wait > 0 then
              -- In the order they were read, among the jobs due in the same ms (lua/_lib/queue-due.lua).
              K.dlast = K.dlast or {}
              redis.call('ZADD', K.delayed, qd_score(K.delayed, K.dlast, now + wait), rec[Q_PRIO] .. id)
              go = false
              rated = rated + 1
            end
          end
          if go then redis.call('HINCRBY', K.groups, 'c:' .. g, '1') end
        end
        if go then
          picked[#picked + 1] = id
          recs[#picked] = rec
          bytes = bytes + #raw
        end
      elseif glimit > 0 and rec[Q_GROUP] ~= '' then
        -- The dropped entry of a grouped job (cancelled after a release had handed it the group's free slot): while
        -- the group runs fewer than its limit, its next waiter goes where it can be fetched.
        local g = rec[Q_GROUP]
        if tonumber(redis.call('HGET', K.groups, 'c:' .. g) or '0') < glimit then
          q_group_wake(K, g)
          woken = true
        end
      end
    end
  end
  -- The hand-off markers read: the slot each marks is taken, given back or moot now, unless its job was put back.
  local unmark = {}
  for i, f in pairs(hat) do
    if small[f] and not kept[i] then unmark[#unmark + 1] = fields[f] end
  end
  if #unmark > 0 then redis.call('HDEL', K.jobs, unpack(unmark)) end
end

local out = { now, paused and 1 or 0, -1, '', '', table.concat(died, '\n') }
local n = #picked
if n > 0 then
  -- Fences never go back, not even after a failover to a replica the last fetches had not reached (replication is
  -- asynchronous, and the lost fetch's jobs are delivered again): the counter never falls below server time x 1000,
  -- so fences handed out after a failover, seconds later, are above any the old primary handed out, as long as the
  -- two hosts' clocks agree to within the failover's duration. (Until 2255 that stays below 2^53.)
  local base = redis.call('HINCRBY', K.meta, 'f', n) - n
  local floor = now * 1000
  if base < floor then
    base = floor
    redis.call('HSET', K.meta, 'f', string.format('%d', floor + n))
  end
  -- Q_WIDE first: keeps both keys out of listpack encoding (lua/_lib/queue.lua).
  local act, lease = { Q_WIDE, 0 }, { '+inf', Q_WIDE }
  -- As a string once: redis.call would format the number again for every job.
  local deadline = string.format('%d', now + tonumber(ARGV[2]))
  for i, id in ipairs(picked) do
    local rec = recs[i]
    -- Lua's own number formatting (%.14g) is exact below 10^14; past that, %d.
    local f = base + i
    if f >= 1e14 then f = string.format('%d', f) end
    -- A job without a group carries its resultTtlMs for the finish script (lua/_lib/queue-fence.lua).
    if rec[Q_GROUP] == '' then f = f .. '.0' .. rec[Q_TTL] end
    act[2 * i + 1], act[2 * i + 2] = id, f
    lease[2 * i + 1], lease[2 * i + 2] = deadline, id
    local o = #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = id, base + i, rec[Q_ATTEMPTS] + 1, rec[Q_MAX], rec[Q_DATA]
  end
  redis.call('HSET', K.active, unpack(act))
  redis.call('ZADD', K.leases, unpack(lease))
end
if wake then q_wake(K) end
if n < want then
  local next = -1
  for _, set in ipairs({ K.delayed, K.leases }) do
    local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    if first[2] and first[1] ~= Q_WIDE then
      -- Rounded up: a delayed job's score may carry a fraction of a ms (lua/_lib/queue-due.lua), and it is fetched
      -- once the server's ms reaches it.
      local ms = math.max(0, math.ceil(tonumber(first[2]) - now))
      if next < 0 or ms < next then next = ms end
    end
  end
  -- As many candidates as asked for, but some could not start (parked for their group's slot, or stale entries of
  -- cancelled or finished jobs): more may wait behind them, unread. Look again at once instead of waiting for new work
  -- (those entries would not wake an XREAD from the stream's last id). Each such candidate is skipped once. Jobs held
  -- back by a rate limit do not count: they come back when the limit admits them, and reading a backlog of them again
  -- at once would cycle it through the delayed set on every window.
  if #cands >= want and #cands - n - rated > 0 then next = 0 end
  -- A waiter woken here is in the ready stream before its last id, which a blocking read would wait past; jobs put back
  -- past maxBytes wait for the next fetch.
  if woken or cut then next = 0 end
  out[3] = next
  for i, key in ipairs({ K.ready, K.wake }) do
    local ok, info = pcall(redis.call, 'XINFO', 'STREAM', key)
    out[3 + i] = '0-0'
    if ok then
      for j = 1, #info, 2 do
        if info[j] == 'last-generated-id' then out[3 + i] = info[j + 1] end
      end
    end
  end
end
return out
