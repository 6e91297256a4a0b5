-- Reset: forgets the state of the given rules on one rate-limit key (their next call starts with full limits); the
-- entries of other rules on the key (another limiter's) are kept until their own expiry.
-- KEYS[1] state (string): "<rule>|<alg>=<expAtMs>:<state>;..." (see lua/_lib/ratelimit.lua)
-- ARGV[1] rules (string): "<name> <alg> <limit> <windowMs> <capacity>;..." as in consume.lua
-- Reply: number
--@include now-ms
--@include ratelimit
local stored = rl_read(KEYS[1])
if not stored then return 0 end
local now = now_ms()
local forgot = 0
for _, r in ipairs(rl_rules(ARGV[1])) do
  if stored[r.field] then
    stored[r.field] = nil
    forgot = 1
  end
end
if forgot == 0 then return 0 end
rl_store(KEYS[1], {}, now, stored, true)
return 1
