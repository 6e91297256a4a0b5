-- Consume: takes cost units from every rule of one rate-limit key, or from none when any rule rejects the call.
-- All rules are evaluated on Redis server time in this one script, so several limits are atomic together.
-- KEYS[1] state (hash): one field per rule, "<rule>|<alg>" -> the algorithm's state
-- ARGV[1] cost (integer): units the call takes from each rule
-- ARGV[2] rules (string): "<name> <alg> <limit> <windowMs> <burst>;..." with alg fw|sw|tb|gcra, burst 0 = none
-- Reply: number[]
--@include now-ms
--@include ratelimit
local now = now_ms()
local cost = tonumber(ARGV[1])
local rules = rl_rules(ARGV[2])
local fields = {}
for i, r in ipairs(rules) do fields[i] = r.field end
local raw = redis.call('HMGET', KEYS[1], unpack(fields))
local allowed = 1
local waits = {}
for i, r in ipairs(rules) do
  rl_load(r, raw[i] or nil, now)
  waits[i] = rl_wait(r, cost, now)
  if waits[i] > 0 then allowed = 0 end
end
if allowed == 1 then
  for _, r in ipairs(rules) do rl_take(r, cost) end
  rl_store(KEYS[1], rules, now)
end
return rl_reply(allowed, rules, waits, now)
