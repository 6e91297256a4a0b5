-- Consume: takes cost units from every rule of one rate-limit key, or from none when any rule rejects the call.
-- All rules are evaluated on Redis server time in this one script, so several limits are atomic together.
-- KEYS[1] state (string): "<rule>|<alg>=<expAtMs>:<state>;..." (see lua/_lib/ratelimit.lua)
-- ARGV[1] cost (integer): units the call takes from each rule
-- ARGV[2] rules (string): per rule "<name>|<alg>", then fw: limit, windowMs; sw: limit, -windowMs; tb/gcra: -limit, windowMs (divided by their gcd), capacity
-- Reply: number | number[] | string
-- (see lua/_lib/ratelimit-one.lua: one rule admitted, its resetMs * (capacity + 1) + remaining; a one-rule
-- fixed-window rejection -1 - that; several rules admitted, "<TIME seconds>:<TIME microseconds>;<the entries
-- written>"; otherwise {allowed, then per rule: waitMs, remaining, resetMs})
local t = redis.call('TIME') -- now_ms(), with TIME's text kept for the reply
local us = t[2] + 0
local now = t[1] * 1000 + (us - us % 1000) / 1000
local cost = ARGV[1]
if cost == '1' or not cost then cost = 1 else cost = cost + 0 end -- the usual cost, without a string conversion
-- Fast path, a key holding this call's rules' entries only (see lua/_lib/ratelimit-one.lua); everything else, and
-- whatever the fast path leaves to it, goes the general way.
-- The rules, from ARGV[2] on. A limiter's own copy of this script has them written in as constants instead, its
-- ARGV being the cost alone: packages/ratelimit/src/specialised.ts replaces the next line with a table of the same
-- values (numbers as numbers), which saves Redis receiving and converting each rule's arguments on every call, and
-- for one rule with its values as r1 to r6 and no table (rules nil: a table is built only for the general path).
-- r1 to r6: the first rule as rl_fast takes it (field, limit, w, cap, wt, full; see lua/_lib/ratelimit-one.lua).
local rules, ri, r1, r2, r3, r4, r5, r6 = ARGV, 2, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[4], nil --@rules
-- A limiter's own copy of one to four rules decides the usual call first, unrolled in top-level code
-- (lua/_lib/ratelimit-own.lua; a comment in this shared script). Otherwise, with several rules, it hands the value it
-- read to rl_fast as r6; with one rule it sets rules to false, the call being the general path's (rl_fast, included
-- only below it so that the usual call builds no closure, would hand it over too).
--@include ratelimit-own
--@include ratelimit-one
local reply = rules ~= false and rl_fast(KEYS[1], cost, now, t, rules, ri, r1, r2, r3, r4, r5, r6)
if reply then return reply end
--@include ratelimit
return rl_consume(KEYS[1], cost, rl_rules_argv(rules or { r1, r2, r5, r4 }, ri), now)
