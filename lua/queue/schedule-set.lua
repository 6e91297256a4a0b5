-- Schedule set: declares (or redeclares) a schedule. An identical declaration changes nothing, so any number of
-- replicas may declare it; a changed one replaces the stored one and its next run time, unless that run is due
-- already (server time) and not made yet: it is made, by the new declaration, and the schedule goes on from there (a
-- deploy that changes a schedule right at its run time does not skip the run).
-- KEYS[1] sched (hash): schedule name -> its declaration (JSON)
-- KEYS[2] schedz (zset): schedule name -> its next run time (server ms)
-- ARGV[1] name (string): the schedule
-- ARGV[2] spec (string): its declaration
-- ARGV[3] nextAt (ms): its first run time (server ms), used when the declaration is new or changed
-- Reply: number
--@include now-ms
-- 0 only when the schedule is stored whole (declaration and run time) as declared already. A declaration without its
-- run time (Redis lost that key alone: an allkeys eviction policy evicts keys one by one) would never fire again: the
-- identical declaration stores the run time again, as for a new schedule.
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if due and redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if not (due and tonumber(due) <= now_ms()) then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) end
return 1
