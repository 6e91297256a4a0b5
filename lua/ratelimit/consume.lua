-- Consume: takes cost units from every rule of one rate-limit key, or from none when any rule rejects the call.
-- All rules are evaluated on Redis server time in this one script, so several limits are atomic together.
-- KEYS[1] state (string): "<rule>|<alg>=<expAtMs>:<state>;..." (see lua/_lib/ratelimit.lua)
-- ARGV[1] cost (integer): units the call takes from each rule
-- ARGV[2] rules (string): five arguments per rule, repeated: "<name>|<alg>", alg (fw|sw|tb|gcra), limit, windowMs, capacity (tb/gcra: limit and windowMs divided by their gcd)
-- Reply: number[]
-- ({allowed, then per rule: waitMs, remaining, resetMs})
--@include now-ms
local now = now_ms()
-- Fast path, one fixed-window rule on a key holding nothing else (the default configuration): the same decision,
-- writes and reply as rl_consume below, without building tables or the library's closures. Anything else (other
-- entries on the key, an entry that does not parse) goes the general way.
if ARGV[7] == nil and ARGV[3] == 'fw' then
  local key, field = KEYS[1], ARGV[2]
  local v = redis.call('GET', key)
  local e, a, b
  local fresh = not v
  if v and not string.find(v, ';', 1, true) and string.sub(v, 1, #field + 1) == field .. '=' then
    e, a, b = string.match(v, '^(%d+):(%d+):(%d+)', #field + 2)
  end
  if fresh or e then
    local cost, limit, w = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
    local start, count = now, 0
    if e then
      e, a, b = tonumber(e), tonumber(a), tonumber(b)
      if now < a + w then start, count = a, math.min(b, limit) end
    end
    local at = start + w
    if count + cost <= limit then
      count = count + cost
      local value = field .. '=' .. string.format('%d:%d:%d', at, start, count)
      if at == e then
        redis.call('SET', key, value, 'KEEPTTL')
      else
        redis.call('SET', key, value, 'PXAT', string.format('%d', at))
      end
      return { 1, 0, limit - count, at - now }
    end
    if e and count > 0 and at > e then
      -- Rejected: only the entry's expiry may move forward (the rule's window grew), the state is kept as stored.
      local kept = string.match(v, '^%d+(.*)$', #field + 2)
      redis.call('SET', key, field .. '=' .. string.format('%d', at) .. kept, 'PXAT', string.format('%d', at))
    end
    if count <= 0 then return { 0, at - now, limit, 0 } end
    return { 0, at - now, limit - count, at - now }
  end
end
--@include ratelimit
return rl_consume(KEYS[1], tonumber(ARGV[1]), rl_rules_argv(ARGV, 2), now)
