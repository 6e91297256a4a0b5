-- Groups sweep: deletes the per-group rate-limit state of groups whose every rule entry has expired (each entry
-- starts with the server time after which it no longer matters, as a rate-limit key expires then): such a group reads
-- exactly as one without state, so the groups hash keeps no field for a group that stopped sending jobs. Scans part
-- of the hash per call; the caller passes the returned cursor to the next call ('0' starts a new pass).
-- KEYS[1] groups (hash): "c:<group>" running count, "r:<group>" rate-limit state
-- ARGV[1] cursor (string): HSCAN cursor
-- ARGV[2] count (integer): HSCAN COUNT hint (fields looked at per call)
-- Reply: [cursor: string, deleted: number]
--@include now-ms
local now = now_ms()
local scan = redis.call('HSCAN', KEYS[1], ARGV[1], 'MATCH', 'r:*', 'COUNT', ARGV[2])
local found, gone = scan[2], {}
for i = 1, #found, 2 do
  local live = false
  -- Entries are "<rule>|<alg>=<expAtMs>:<state>", joined with ';'.
  for at in string.gmatch(found[i + 1], '=(%d+):') do
    if tonumber(at) > now then
      live = true
      break
    end
  end
  if not live then gone[#gone + 1] = found[i] end
end
if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
return { scan[1], #gone }
