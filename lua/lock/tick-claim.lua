-- Tick claim: claim the right to run one job's tick. The tick record remembers the outcome for recordTtlMs, so a
-- replica arriving after the run finished does not run it again. A running claim carries a lease (leaseUntil, server
-- time) that the runner extends; a failed or abandoned (lease expired) run is claimed again only with retryOnError.
-- The record outlives the lease by recordTtlMs (here, and on every extension), so it cannot expire under a run.
-- KEYS[1] record (hash): state running|ok|failed, owner, token, fence, attempt, startMs, endMs, leaseUntil, error
-- KEYS[2] fence (integer): the job's fence counter, incremented once per claim
-- ARGV[1] owner (string): id of the claiming replica
-- ARGV[2] token (string): random token of this claim
-- ARGV[3] ttlMs (ms): lease time to live of the run
-- ARGV[4] recordTtlMs (ms): how long the tick record is kept after the lease ends or the run finishes
-- ARGV[5] retryOnError (0|1): whether a failed or abandoned run may be claimed again
-- Reply: [claimed: number, state: string, fence: number, owner: string]
--@include now-ms
local now = now_ms()
local function claim(attempt)
  local fence = redis.call('INCR', KEYS[2])
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'state', 'running', 'owner', ARGV[1], 'token', ARGV[2], 'fence', fence,
    'attempt', attempt, 'startMs', now, 'leaseUntil', now + tonumber(ARGV[3]))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]))
  return { 1, 'running', fence, ARGV[1] }
end
local record = redis.call('HMGET', KEYS[1], 'state', 'owner', 'attempt', 'leaseUntil')
local state, owner = record[1], record[2]
if not state then
  return claim(1)
end
local attempt = tonumber(record[3] or '1')
if state == 'ok' then
  return { 0, 'ok', 0, owner }
end
if state == 'running' and tonumber(record[4] or '0') > now then
  return { 0, 'running', 0, owner }
end
if ARGV[5] == '1' then
  return claim(attempt + 1)
end
if state == 'running' then
  return { 0, 'abandoned', 0, owner }
end
return { 0, state, 0, owner }
