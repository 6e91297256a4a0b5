-- queue-fence: the values of a queue partition's active hash, "<fence>:<resultTtlMs>:<group>" of each running job's
-- delivery (lua/queue/fetch.lua writes them; earlier versions wrote "<fence>" alone, which is still read). The fence
-- decides whose completion counts; the rest lets lua/queue/finish.lua complete a job without reading its record.
-- Whether active value v (false when absent) is the current delivery of fence f (its digits, as the worker sends it).
local function qf_is(v, f)
  return v and (v == f or string.sub(v, 1, #f + 1) == f .. ':') or false
end
