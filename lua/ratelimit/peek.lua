-- Peek: reports every rule's state for one rate-limit key and whether a call of cost units would pass; writes nothing.
-- KEYS[1] state (string): "<expireAtMs>;<rule>|<alg>=<state>;..." (see lua/_lib/ratelimit.lua)
-- ARGV[1] cost (integer): cost of the call to evaluate
-- ARGV[2] rules (string): "<name> <alg> <limit> <windowMs> <burst>;..." with alg fw|sw|tb|gcra, burst 0 = none
-- Reply: number[]
--@include now-ms
--@include ratelimit
local now = now_ms()
local cost = tonumber(ARGV[1])
local rules = rl_rules(ARGV[2])
local stored = rl_read(KEYS[1])
local allowed = 1
local waits = {}
for i, r in ipairs(rules) do
  rl_load(r, stored[r.field], now)
  waits[i] = rl_wait(r, cost, now)
  if waits[i] > 0 then allowed = 0 end
end
return rl_reply(allowed, rules, waits, now)
