-- Extend: renews the leases of a batch of running deliveries of one partition, each only while its fence is still the
-- job's current one. Reply per delivery: 1 renewed, 0 lost (reclaimed after its lease expired, or handed back),
-- 2 cancelled.
-- KEYS[1] jobs (hash): job fields
-- KEYS[2] leases (zset): running job -> lease deadline (server ms)
-- KEYS[3] active (hash): running job -> fence of its current delivery (lua/_lib/queue-fence.lua)
-- ARGV[1] leaseMs (ms): the new lease, from now
-- ARGV[2] delivery (list): 2 arguments per delivery, repeated: id, fence
-- Reply: number[]
--@include now-ms
--@include queue-fence
local count = (#ARGV - 1) / 2
local ids = {}
for i = 1, count do ids[i] = ARGV[2 * i] end
local fences = redis.call('HMGET', KEYS[3], unpack(ids))
local deadline = now_ms() + tonumber(ARGV[1])
local out, renew = {}, {}
for i = 1, count do
  if qf_is(fences[i], ARGV[2 * i + 1]) then
    out[i] = 1
    renew[#renew + 1] = deadline
    renew[#renew + 1] = ids[i]
  else
    local raw = redis.call('HGET', KEYS[1], 'j:' .. ids[i])
    if raw and cmsgpack.unpack(raw)[1] == 'x' then out[i] = 2 else out[i] = 0 end
  end
end
if #renew > 0 then
  -- On a full noeviction Redis, a script whose first write may add data is refused (OOM), though ZADD XX only moves
  -- deadlines: a write that adds nothing goes first (no job has the empty id), so running jobs keep their leases.
  redis.call('ZREM', KEYS[2], '')
  redis.call('ZADD', KEYS[2], 'XX', unpack(renew))
end
return out
