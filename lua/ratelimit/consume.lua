-- Consume: takes cost units from every rule of one rate-limit key, or from none when any rule rejects the call.
-- All rules are evaluated on Redis server time in this one script, so several limits are atomic together.
-- KEYS[1] state (string): "<rule>|<alg>=<expAtMs>:<state>;..." (see lua/_lib/ratelimit.lua)
-- ARGV[1] cost (integer): units the call takes from each rule
-- ARGV[2] rules (string): five arguments per rule, repeated: "<name>|<alg>", alg (fw|sw|tb|gcra), limit, windowMs, capacity (tb/gcra: limit and windowMs divided by their gcd)
-- Reply: number[]
-- ({allowed, then per rule: waitMs, remaining, resetMs})
--@include now-ms
--@include ratelimit-one
local now = now_ms()
-- Fast path, a key holding this call's rules' entries only (see lua/_lib/ratelimit-one.lua); everything else, and
-- whatever the fast path leaves to it, goes the general way.
local reply = rl_fast(KEYS[1], tonumber(ARGV[1]), now, ARGV, 2)
if reply then return reply end
--@include ratelimit
return rl_consume(KEYS[1], tonumber(ARGV[1]), rl_rules_argv(ARGV, 2), now)
