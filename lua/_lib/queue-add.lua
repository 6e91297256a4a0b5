-- queue-add: creating one job, shared by lua/queue/add.lua and lua/queue/schedule-fire.lua (which include
-- lua/_lib/queue-due.lua before it). The job is the field
-- "j:<id>" of the partition's jobs hash (a cmsgpack array, see lua/_lib/queue.lua); HSETNX makes an id that exists
-- already a duplicate that creates and changes nothing (unless its job finished and outlived its resultTtlMs).
-- add.lua gets records packed by the client (packing costs Redis about 9k instructions per job); schedule-fire.lua
-- packs its job here (qa_record).
local QA_PRIO_SHIFT = 17592186044416 -- 2^44, as in lua/_lib/queue.lua

-- Reads a job's options text: "<delayMs> <priority> <attempts> <backoff type> <backoff delayMs> <backoff maxDelayMs>
-- <jitter per mille> <resultTtlMs> <group>" (the group is the rest of the text, '' for none). Returns a table.
local function qa_options(text)
  local d, p, a, bt, bd, bm, j, ttl, g =
    string.match(text, '^(%d+) (%d) (%d+) (%d) (%d+) (%d+) (%d+) (%d+) (.*)$')
  if not d then error('queue: malformed job options: ' .. text) end
  return { delay = tonumber(d), prio = tonumber(p), attempts = tonumber(a), btype = tonumber(bt),
    bdelay = tonumber(bd), bmax = tonumber(bm), jitter = tonumber(j), ttl = tonumber(ttl), group = g }
end

-- A job's record (the cmsgpack array of lua/_lib/queue.lua) for `data` and options `o` (from qa_options), as the
-- client's packRecord (packages/queue/src/record.ts) writes it for lua/queue/add.lua, byte for byte.
local function qa_record(data, o)
  return cmsgpack.pack({ 'w', 0, o.attempts, o.btype, o.bdelay, o.bmax, o.jitter, o.ttl, o.prio, o.group, data, 0 })
end

-- Whether the job `id` whose record is `raw` finished (completed or cancelled) and outlived its resultTtlMs: such a
-- job reads as gone (lua/queue/get.lua) even before a trim removes it, so its id is free. Its fields and its entry of
-- the done or cancelled zset are removed (a later trim must not remove the job created under the same id), and the
-- field "s:<id>" records when the id was freed (see below). `ended`:
-- { done, cancelled } keys. Only reached when HSETNX found the id taken (a duplicate): no cost for a new job.
local function qa_free_expired(jobs, ended, id, raw, clock)
  local st = cmsgpack.unpack(raw)[1]
  local set
  if st == 'x' then
    set = ended[2]
  elseif st == 'c' or (st == 'w' and redis.call('HEXISTS', jobs, 'r:' .. id) == 1) then
    set = ended[1]
  else
    return false
  end
  local expiry = redis.call('ZSCORE', set, id)
  clock.now = clock.now or now_ms()
  if expiry and tonumber(expiry) > clock.now then return false end
  redis.call('ZREM', set, id)
  redis.call('HDEL', jobs, 'j:' .. id, 'r:' .. id, 'e:' .. id, 'p:' .. id, 'h:' .. id)
  -- Entries the earlier job left (a cancelled job's ready-stream or group-wait entry) are older than this instant:
  -- fetch.lua and q_group_wake skip them, so they cannot start the new job early (before its delay, its priority).
  redis.call('HSET', jobs, 's:' .. id, string.format('%d', clock.now))
  return true
end

-- Creates job `id` with record `rec` (its priority `p` and delay `delay` ms). keys: jobs, ready, delayed, prio.
-- `ended`: { done, cancelled } keys (an id whose finished job outlived its resultTtlMs is created again, see
-- qa_free_expired), or nil. `clock` is a table caching the server time ({ now = nil }). Returns created (boolean),
-- wake (boolean: the job went outside the ready stream).
local function qa_add(keys, id, rec, p, delay, clock, ended)
  local refreed = false
  if redis.call('HSETNX', keys[1], 'j:' .. id, rec) == 0 then
    local raw = redis.call('HGET', keys[1], 'j:' .. id)
    if not (ended and qa_free_expired(keys[1], ended, id, raw, clock)) then return false, false end
    redis.call('HSET', keys[1], 'j:' .. id, rec)
    refreed = true
  end
  if delay > 0 then
    clock.now = clock.now or now_ms()
    -- FIFO among jobs due in the same ms (lua/_lib/queue-due.lua); clock.dlast caches the scores for the call.
    clock.dlast = clock.dlast or {}
    redis.call('ZADD', keys[3], qd_score(keys[3], clock.dlast, clock.now + delay), p .. id)
    return true, true
  elseif p == 0 then
    local entry = redis.call('XADD', keys[2], '*', 'i', id)
    if refreed then
      -- Redis 7.2+ and Valkey date `XADD *` by the time the script started, TIME by the time it is called: the new
      -- entry may be a ms older than the freed marker, and fetch.lua would skip it as the earlier job's (the job would
      -- never run). The marker is then the entry's time (Redis 7.0 dates both alike: this never applies there).
      local ms = tonumber(string.match(entry, '^%d+'))
      if ms < clock.now then redis.call('HSET', keys[1], 's:' .. id, string.format('%d', ms)) end
    end
    return true, false
  end
  clock.now = clock.now or now_ms()
  -- FIFO within a priority: 1 more than the priority's last score when that one is not lower (several jobs in the
  -- same ms: equal scores would be served in id order). clock.plast caches the last scores for the script call.
  local base = p * QA_PRIO_SHIFT
  clock.plast = clock.plast or {}
  local top = clock.plast[p]
  if not top then
    top = redis.call('ZRANGE', keys[4], string.format('(%d', base + QA_PRIO_SHIFT), string.format('%d', base),
      'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')[2]
    top = top and tonumber(top) or 0
  end
  local score = base + clock.now
  if score <= top then score = top + 1 end
  clock.plast[p] = score
  redis.call('ZADD', keys[4], score, id)
  return true, true
end
