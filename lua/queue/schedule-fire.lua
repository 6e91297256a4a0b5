-- Schedule fire: creates the job of a schedule's due run and moves the schedule to its next run time, in one step, only
-- when the schedule's stored run time is still `dueAt` and has come (server time), and its declaration is still the one
-- the caller read (a replica may have changed it since: the run is then made by the next look, with the new
-- declaration's data and timing). However many replicas try, one job per run: the first moves the run time, the
-- others find it moved. The job's id names the run, so even a replayed call creates nothing new.
-- KEYS[1] jobs (hash): job fields
-- KEYS[2] ready (stream): ready jobs of priority 0
-- KEYS[3] delayed (zset): "<priority digit><id>" -> due (server ms)
-- KEYS[4] prio (zset): jobs of priority 1-9
-- KEYS[5] wake (stream): wake-up marks
-- KEYS[6] sched (hash): schedule name -> its declaration (JSON)
-- KEYS[7] schedz (zset): schedule name -> its next run time (server ms)
-- ARGV[1] name (string): the schedule
-- ARGV[2] dueAt (ms): the run time the caller found (server ms)
-- ARGV[3] nextAt (ms): the run time after it (server ms)
-- ARGV[4] id (string): the job's id
-- ARGV[5] data (string): the job's data
-- ARGV[6] options (string): the job's options text (see lua/_lib/queue-add.lua's qa_options)
-- ARGV[7] declaration (string): the declaration the caller read (absent: not checked, as earlier versions sent)
-- Reply: number
--@include now-ms
--@include queue-due
--@include queue-add
local due = redis.call('ZSCORE', KEYS[7], ARGV[1])
if not due or tonumber(due) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[7] and redis.call('HGET', KEYS[6], ARGV[1]) ~= ARGV[7] then return 0 end
local clock = { now = now_ms() }
if tonumber(ARGV[2]) > clock.now then return 0 end
-- Read before any write: options it cannot read fail the call with nothing changed.
local o = qa_options(ARGV[6])
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[1])
local created, wake = qa_add(KEYS, ARGV[4], qa_record(ARGV[5], o), o.prio, o.delay, clock)
if wake then redis.call('XADD', KEYS[5], 'MAXLEN', '1', '*', 'w', '1') end
return created and 1 or 2
