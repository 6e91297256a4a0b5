-- Refund: gives cost units back to every rule of one rate-limit key (never beyond a full rule).
-- KEYS[1] state (string): "<rule>|<alg>=<expAtMs>:<state>;..." (see lua/_lib/ratelimit.lua)
-- ARGV[1] cost (integer): units to give back to each rule
-- ARGV[2] rules (string): "<name> <alg> <limit> <windowMs> <capacity>;..." with alg fw|sw|tb|gcra (tb/gcra: limit and windowMs divided by their gcd)
-- Reply: number[]
-- ({allowed, then per rule: waitMs, remaining, resetMs}, as consume.lua)
--@include now-ms
--@include ratelimit
-- Gives cost units back to rule r (never beyond a full rule).
local function rl_give(r, cost)
  if r.bucket then
    r.level = math.min(r.capt, r.level + cost * r.w)
  elseif r.alg == 'fw' then
    r.count = math.max(0, r.count - cost)
  else
    local left = cost - r.curr
    r.curr = math.max(0, r.curr - cost)
    if left > 0 then r.prev = math.max(0, r.prev - left) end
  end
end
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
