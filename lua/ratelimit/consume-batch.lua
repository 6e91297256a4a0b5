-- Consume batch: N consume calls (micro-batching) applied one after another in call order on one server time, each
-- exactly as lua/ratelimit/consume.lua does it (every rule or none), each with its own reply or error.
-- Call i uses KEYS[i] and ARGV[i]; keys may repeat (calls on one key apply in order) and, on a standalone server
-- only, carry different hash tags. On a Cluster the client sends one batch per hash slot.
-- KEYS[1] state (string): the rate-limit key of call 1 (one key per call, repeated)
-- ARGV[1] cost (integer): units call 1 takes (one cost per call, repeated: as many as KEYS)
-- ARGV[2] rules (string): after the costs, the rules as in consume.lua
-- Reply: Array<number | number[] | string>
-- (per call: its reply as consume.lua's, or the call's error text)
--@include ratelimit-one
--@include ratelimit
local t = redis.call('TIME') -- now_ms(), with TIME's text kept for the replies
local us = t[2] + 0
local now = t[1] * 1000 + (us - us % 1000) / 1000
local keys, argv = KEYS, ARGV
local n = #keys
local rules = rl_rules_argv(argv, n + 1)
local reply = {}
local r1, r2, r3, r4 = argv[n + 1], argv[n + 2], argv[n + 3], argv[n + 4] -- the first rule, as rl_fast takes it
for i = 1, n do
  -- Each call takes the fast path of lua/_lib/ratelimit-one.lua when its key holds its rules' entries only.
  local cost = argv[i]
  if cost == '1' then cost = 1 else cost = cost + 0 end
  local ok, res = pcall(rl_fast, keys[i], cost, now, t, argv, n + 1, r1, r2, r3, r4, r3)
  if ok and not res then ok, res = pcall(rl_consume, keys[i], cost, rules, now) end
  if ok then
    reply[i] = res
  else
    reply[i] = tostring(type(res) == 'table' and res.err or res)
  end
end
return reply
