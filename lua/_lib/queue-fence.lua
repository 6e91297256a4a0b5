-- queue-fence: the values of a queue partition's active hash, one per running job's delivery (lua/queue/fetch.lua
-- writes them): "<fence>.0<resultTtlMs>" for a job without a group, "<fence>" for one with a group (and for every job
-- in earlier versions). The fence decides whose completion counts; the resultTtlMs lets lua/queue/finish.lua complete
-- a job without reading its record. The ".0" form is a decimal number whose integer part is the fence, which is how
-- the previous release's scripts read it (tonumber, then an integer reply): replicas of both run side by side.
-- Whether active value v (false when absent) is the current delivery of fence f (its digits, as the worker sends it).
local function qf_is(v, f)
  return v and (v == f or string.sub(v, 1, #f + 1) == f .. '.') or false
end
