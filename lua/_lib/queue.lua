-- queue: helpers shared by lua/queue/*.lua. Every script of one queue partition gets the partition's keys in one fixed
-- order (q_keys below); a job is a few fields of the partition's jobs hash, never a key of its own, so every key a
-- script touches is declared in KEYS. Putting a job back to wait, retrying and burying it: lua/_lib/queue-retry.lua;
-- per-group rate limits: lua/_lib/queue-group-rate.lua (included by the scripts that reach them).
--   jobs hash: "j:<id>" the record (cmsgpack array, see Q_* indices), "r:<id>" result, "e:<id>" last error,
--              "p:<id>" progress, "s:<id>" when the id was freed and created again (queue-add.lua), "h:<id>" the place
--              in its group's line of a waiting job a release handed a free slot (q_group_wake; until a fetch reads it
--              or it is cancelled). A completion writes the result field only: a record in state 'w' with a result
--              field is a completed job (its attempts count the successful one once more, it finished at its done
--              expiry minus its resultTtlMs); records in state 'c' were written by earlier versions
--   ready stream: entries "i <id>" of priority-0 jobs, read by the consumer group "q" (read with NOACK and trimmed by
--              one fetch script: the group is the cursor, the leases zset is the record of what runs)
--   delayed zset: "<priority digit><id>" -> due (server ms, plus a fraction of a ms keeping jobs due in the same ms
--              FIFO: lua/_lib/queue-due.lua): delays, retry backoff, rate-limited group jobs
--   prio zset: "<id>" -> priority * 2^44 + enqueue time (server ms): jobs of priority 1-9, and (band 0, below 2^44)
--              jobs of priority 0 a group's release put back, read before the ready stream (q_group_wake)
--   leases zset: "<id>" -> lease deadline (server ms); active hash: "<id>" -> the current delivery's fence (and
--              resultTtlMs, lua/_lib/queue-fence.lua). Both
--              also hold Q_WIDE (below; lease score +inf), so neither is a listpack (see Q_WIDE)
--   done / cancelled zsets: "<id>" -> expiry (server ms); dead zset: "<id>" -> time of death (server ms)
--   meta hash: "f" fence counter, "paused"; groups hash: "c:<group>" running count, "r:<group>" rate-limit state
--   gwait zset (all scores 0): "<group>\0<time><rank>\0<id>" jobs waiting for a group slot, FIFO per group by lex
--              order (time: 15 digits, server ms, never below the group's last entry nor the job's freed marker;
--              rank: 6 digits, after the group's last entry of that time: lua/queue/fetch.lua q_park_at; earlier
--              versions wrote the time alone)
--   wake stream (MAXLEN 1): written when work appears outside the ready stream, so blocked workers wake up

-- Record fields (cmsgpack array).
local Q_STATE, Q_ATTEMPTS, Q_MAX, Q_BTYPE, Q_BDELAY, Q_BMAX, Q_JITTER, Q_TTL, Q_PRIO, Q_GROUP, Q_DATA, Q_FINISHED =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
local Q_PRIO_SHIFT = 17592186044416 -- 2^44: priority * 2^44 + ms stays below 2^53
-- Q_WIDE: a member of the leases zset (score +inf) and a field of the active hash, written by every fetch that hands
-- out jobs. Redis keeps a small zset or hash (up to 128 entries of up to 64 bytes by default) as a listpack, where
-- every lookup by member scans the whole list; these two hold one entry per running job (often about a hundred) and
-- every fetch, finish and lease renewal looks jobs up in them. An entry longer than 64 bytes turns them into a skiplist
-- and a hash table once (Redis never turns them back while they exist), so lookups stay O(1). It starts with a control
-- character, which job ids never contain, and is never a job: counts and due times skip it.
local Q_WIDE = '\1coordis:queue:not-a-job:wide-entry-keeps-this-key-a-hash-table-not-a-listpack'

local function q_keys()
  return {
    jobs = KEYS[1], ready = KEYS[2], delayed = KEYS[3], prio = KEYS[4], leases = KEYS[5], active = KEYS[6],
    done = KEYS[7], dead = KEYS[8], cancelled = KEYS[9], meta = KEYS[10], groups = KEYS[11], gwait = KEYS[12],
    wake = KEYS[13],
  }
end

local function q_wake(K)
  redis.call('XADD', K.wake, 'MAXLEN', '1', '*', 'w', '1')
end

-- The priority of the job of gwait entry (`at`, `id`) of `group` while it still waits for a slot of it, else nil.
-- An entry parked before its id was freed and created again belongs to the earlier job (queue-add.lua), and so does
-- one found for a job that is delayed now (its earlier job was dropped by retention with its freed marker): it must not
-- start the new job before its delay. Dropped by retention, the earlier job leaves no freed marker: the new job under
-- its id may be of another group, running or completed (handed the slot, no fetch would hand it on, and the group's
-- waiters would wait forever).
local function q_waiting_prio(K, group, at, id)
  local raw = redis.call('HGET', K.jobs, 'j:' .. id)
  if not raw then return nil end
  local rec = cmsgpack.unpack(raw)
  if rec[Q_STATE] ~= 'w' or rec[Q_GROUP] ~= group then return nil end
  local small = redis.call('HMGET', K.jobs, 's:' .. id, 'r:' .. id)
  if small[2] or (small[1] and tonumber(string.sub(at, 1, 15)) < tonumber(small[1])) then return nil end
  if redis.call('HEXISTS', K.active, id) == 1 or redis.call('ZSCORE', K.delayed, rec[Q_PRIO] .. id) then return nil end
  return rec[Q_PRIO]
end

-- How many of a group's oldest waiters a release looks at for the one of the best priority.
local Q_WAKE_SCAN = 8

-- A running job of `group` ended (or left the worker), and the caller knows a slot is free: the group's oldest waiter
-- of the best priority among its Q_WAKE_SCAN oldest goes back where jobs of its priority wait (the next fetch checks
-- the limits again): band 0 of the prio zset for priority 0, read before the ready stream, or the prio zset scored by
-- the time it was put to wait (a job of priority 1-9 must not overtake jobs of higher priorities through the ready
-- stream). A waiter of priority 1-9 is read after the ready stream, where the group's later jobs of priority 0 take the
-- slot first: handed to it while a waiter of priority 0 waits behind it, the slot would go to those later jobs ahead of
-- that waiter. Entries of jobs that no longer wait (cancelled: cancel leaves them) are dropped on the way: handing the
-- slot to one of them would leave the jobs behind it waiting for a release that never comes.
local function q_group_wake(K, group)
  while true do
    local line = redis.call('ZRANGE', K.gwait, '[' .. group .. '\0', '[' .. group .. '\1', 'BYLEX', 'LIMIT', '0',
      Q_WAKE_SCAN)
    if #line == 0 then return end
    local best, at, id, prio
    for _, entry in ipairs(line) do
      local eat, eid = string.match(entry, '^[^%z]*%z([^%z]*)%z(.*)$')
      local p = q_waiting_prio(K, group, eat, eid)
      if not p then
        redis.call('ZREM', K.gwait, entry)
      elseif not best or p < prio then
        best, at, id, prio = entry, eat, eid, p
        if p == 0 then break end
      end
    end
    if best then
      redis.call('ZREM', K.gwait, best)
      local parked = tonumber(string.sub(at, 1, 15))
      -- The hand-off marker: its place in the line, for a fetch that finds the group full again to put it back there
      -- (ahead of the jobs that waited after it), and for a cancel to know it held the slot (lua/queue/cancel.lua).
      redis.call('HSET', K.jobs, 'h:' .. id, at)
      if prio == 0 then
        -- Band 0 of the prio zset (below every priority 1-9 job), scored by the time it was put to wait and its rank
        -- among the jobs one fetch parked (a fraction of a ms, exact below 2^41 ms): a fetch with a group limit reads
        -- band 0 before the ready stream, so the job keeps its place ahead of the jobs of its group read since
        -- (at the ready stream's tail they would take the slot first, and it could wait behind them indefinitely).
        redis.call('ZADD', K.prio, parked + math.min(tonumber(string.sub(at, 16)) or 0, 2047) / 2048, id)
      else
        -- Scored by the time it was put to wait: ahead of the jobs of its priority enqueued since.
        redis.call('ZADD', K.prio, prio * Q_PRIO_SHIFT + parked, id)
      end
      q_wake(K)
      return
    end
  end
end

local function q_group_release(K, group)
  if group == '' then return end
  local field = 'c:' .. group
  if redis.call('HINCRBY', K.groups, field, -1) <= 0 then redis.call('HDEL', K.groups, field) end
  q_group_wake(K, group)
end

-- Removes up to 200 entries of a retention zset (done, cancelled: scored by expiry; dead: by time of death) whose
-- score is at most `upTo`, then the oldest beyond `maxCount`, with their fields in the jobs hash.
local function q_trim(K, set, upTo, maxCount)
  local gone = redis.call('ZRANGE', set, '-inf', upTo, 'BYSCORE', 'LIMIT', '0', '200')
  local n = #gone
  local extra = redis.call('ZCARD', set) - n - maxCount
  if extra > 0 then
    if extra > 200 then extra = 200 end
    local more = redis.call('ZRANGE', set, n, n + extra - 1)
    for _, id in ipairs(more) do
      n = n + 1
      gone[n] = id
    end
  end
  if n == 0 then return end
  redis.call('ZREM', set, unpack(gone))
  local fields = {}
  for i, id in ipairs(gone) do
    local f = 5 * i
    fields[f - 4], fields[f - 3], fields[f - 2], fields[f - 1], fields[f] =
      'j:' .. id, 'r:' .. id, 'e:' .. id, 'p:' .. id, 's:' .. id
    fields[5 * n + i] = 'h:' .. id
  end
  redis.call('HDEL', K.jobs, unpack(fields))
end

-- Publishes what finished ("<kind> <id>" lines; kind c completed, D dead, x cancelled) on the partition's channel, for
-- Queue.result(). pub is 'SPUBLISH' (the channel shares the keys' hash tag) or '' to skip.
local function q_publish(pub, channel, lines)
  if pub ~= '' and #lines > 0 then redis.call(pub, channel, table.concat(lines, '\n')) end
end
