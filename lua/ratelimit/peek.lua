-- Peek: reports every rule's state for one rate-limit key and whether a call of cost units would pass; writes nothing.
-- KEYS[1] state (string): "<rule>|<alg>=<expAtMs>:<state>;..." (see lua/_lib/ratelimit.lua)
-- ARGV[1] cost (integer): cost of the call to evaluate
-- ARGV[2] rules (string): "<name> <alg> <limit> <windowMs> <capacity>;..." with alg fw|sw|tb|gcra (tb/gcra: limit and windowMs divided by their gcd)
-- Reply: number[]
-- ({allowed, then per rule: waitMs, remaining, resetMs}: the full form of consume.lua's reply)
--@include now-ms
--@include ratelimit
local now = now_ms()
local cost = tonumber(ARGV[1])
local rules = rl_rules(ARGV[2])
local stored = rl_read(KEYS[1]) or {}
local allowed = 1
local waits = {}
for i, r in ipairs(rules) do
  rl_load(r, stored, now)
  waits[i] = rl_wait(r, cost, now)
  if waits[i] > 0 then allowed = 0 end
end
return rl_reply(allowed, rules, waits, now)
