-- Refund: gives cost units back to every rule of one rate-limit key (never beyond a full rule).
-- KEYS[1] state (string): "<rule>|<alg>=<expAtMs>:<state>;..." (see lua/_lib/ratelimit.lua)
-- ARGV[1] cost (integer): units to give back to each rule
-- ARGV[2] rules (string): "<name> <alg> <limit> <windowMs> <capacity>;..." with alg fw|sw|tb|gcra (tb/gcra: limit and windowMs divided by their gcd)
-- Reply: number[]
--@include now-ms
--@include ratelimit
local now = now_ms()
local cost = tonumber(ARGV[1])
local rules = rl_rules(ARGV[2])
local stored = rl_read(KEYS[1])
local waits = {}
local allowed = 1
for i, r in ipairs(rules) do
  rl_load(r, stored or {}, now)
  rl_give(r, cost)
  waits[i] = rl_wait(r, 1, now)
  if waits[i] > 0 then allowed = 0 end
end
rl_store(KEYS[1], rules, now, stored)
return rl_reply(allowed, rules, waits, now)
