-- Consume batch: N consume calls (micro-batching) applied one after another in call order on one server time, each
-- exactly as lua/ratelimit/consume.lua does it (every rule or none), each with its own reply or error.
-- Call i uses KEYS[i] and ARGV[1 + i]; keys may repeat (calls on one key apply in order) and, on a standalone
-- server only, carry different hash tags. On a Cluster the client sends one batch per hash slot.
-- KEYS[1] state (string): the rate-limit key of call 1 (one key per call, repeated)
-- ARGV[1] rules (string): "<name> <alg> <limit> <windowMs> <capacity>;..." as in consume.lua
-- ARGV[2] cost (integer): units call 1 takes (one cost per call, repeated)
-- Reply: [nowMs: number, ...calls: Array<number[] | string>]
-- (the server time all calls saw, then per call: {allowed, per rule waitMs, remaining, resetMs} as consume.lua
-- without its nowMs, or the call's error text)
--@include now-ms
--@include ratelimit
local now = now_ms()
local rules = rl_rules(ARGV[1])
local reply = { now }
for i = 1, #KEYS do
  local ok, res = pcall(rl_consume, KEYS[i], tonumber(ARGV[1 + i]), rules, now, true)
  if ok then
    reply[i + 1] = res
  else
    reply[i + 1] = tostring(type(res) == 'table' and res.err or res)
  end
end
return reply
